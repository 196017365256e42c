# pointsd - clearing and settlement server for coalition loyalty programs.
# One plain Makefile: `make run` and `make test` are the two commands.

BUILD    ?= build
SAN      ?=
CC       ?= cc
PKGS     := libevent libevent_openssl libevent_pthreads jansson libpq openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wvla \
            -Wformat=2 -Wno-format-nonliteral -fno-strict-aliasing -pthread \
            -I. -Icommon -I$(BUILD)/gen $(PKG_CFLAGS) -MMD -MP
LDLIBS   += $(PKG_LIBS) -pthread -lm
ifeq ($(SAN),1)
CFLAGS   += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif

# library: everything but the two programs' front ends
LIB_SRCS := $(wildcard common/*.c partners/*.c settlement/*.c) \
            $(wildcard clearing/jws.c clearing/message.c clearing/receipt.c clearing/route.c \
              clearing/groupkeys.c)
PD_SRCS  := $(filter-out $(LIB_SRCS),$(wildcard clearing/*.c))
CTL_SRCS := $(wildcard cli/*.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
BENCH_SRCS := $(wildcard bench/*.c)

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/sql_embed.o
PD_OBJS  := $(PD_SRCS:%.c=$(BUILD)/%.o)
CTL_OBJS := $(CTL_SRCS:%.c=$(BUILD)/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run up down test unit integration clean lint bench bench-sql bench-growth fuzz asan-test
all: $(BUILD)/pointsd $(BUILD)/pointsctl

deps:
	@scripts/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/gen/sql_embed.c: $(sort $(wildcard sql/*.sql)) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh $(sort $(wildcard sql/*.sql)) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/sql_embed.o: $(BUILD)/gen/sql_embed.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libpts.a: $(LIB_OBJS)
	ar rcs $@ $^

$(BUILD)/pointsd: $(PD_OBJS) $(BUILD)/libpts.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/pointsctl: $(CTL_OBJS) $(BUILD)/libpts.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libpts.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/bench/loadgen: $(BENCH_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/libpts.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

unit: $(UNIT_BINS)
	@scripts/run-unit.sh $(UNIT_BINS)

# the development stack under var/ (operations.md §2)
run: deps all
	@scripts/devstack.sh run

up: deps all
	@scripts/devstack.sh up

down:
	@scripts/devstack.sh down

# every test, on a throwaway stack; then again under ASan+UBSan
test: deps
	@scripts/test.sh

lint:
	@scripts/lint.sh

# the benchmark matrix of docs/performance.md, on a stack of its own
bench: all $(BUILD)/bench/loadgen
	@bench/run.sh

# the database's share of posting alone (groups of 26 and of 1,000)
bench-sql: all
	@bench/sql_post_group.sh 26 400
	@bench/sql_post_group.sh 1000 20

# 10^4 vs 10^7 entries in the ledger (bulk load: 30 min or more, ~20 GB)
bench-growth: all $(BUILD)/bench/loadgen
	@bench/growth.sh

# each fuzz target for FUZZ_SECONDS (default 60); make test replays the corpus
fuzz:
	@scripts/fuzz.sh run

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
