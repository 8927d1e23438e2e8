# tgt_profile — PGXS build.  `make demo` and `make test` are the two
# commands a new user needs; everything else is the ordinary PGXS build.

EXTENSION   = tgt_profile
EXTVERSION  = $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" $(EXTENSION).control)
MODULE_big  = tgt_profile

# One file per concern (see DESIGN.md "Architecture").
OBJS = \
	src/module.o \
	src/caller.o \
	src/store.o \
	src/placement.o \
	src/remote.o \
	src/settings.o \
	src/additions.o \
	src/token_format.o \
	src/tokens.o \
	src/fresh_cache.o \
	src/token_verify.o \
	src/authorize.o \
	src/request_headers.o \
	src/clients.o \
	src/attributes.o \
	src/aliases.o \
	src/profiles.o \
	src/profile_write.o \
	src/bulk.o \
	src/read_ahead.o \
	src/read_dispatch.o \
	src/read_common.o \
	src/read_adobe.o \
	src/read_json.o

# The hand-edited install script is copied to its versioned name at build time.
DATA_built  = $(EXTENSION)--$(EXTVERSION).sql
# Earlier versions' frozen install scripts and every upgrade script.
DATA        = $(wildcard src/$(EXTENSION)--*.sql)

PG_CONFIG  ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS   = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK  = -ljansson -lcrypto -pthread

# pg_regress: sql/NAME.sql against expected/NAME.out, pgcrypto and the
# extension created in every test database.
REGRESS      = setup install privileges tokens authorize fresh_auth settings profiles identity_merge bulk bulk_limits request_headers dba_additions upgrade input_bounds distribute client_relation merge_aliases read_ahead
REGRESS_OPTS = --load-extension=pgcrypto --load-extension=$(EXTENSION)
# The specs live in test/isolation: --inputdir lets `make installcheck`
# (pg_buildext, the Debian package's tests) find them.
ISOLATION      = token_rotation profile_merge bulk_concurrency fresh_authorization client_races old_schema settings_cache identity_merge
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=pgcrypto --load-extension=$(EXTENSION)

EXTRA_CLEAN = results regression.diffs regression.out log tmp_check output_iso .pg_version \
	test/isolation/output_iso test/fuzz/bin .tmp

# `make demo` and `make test` must work before the server headers are
# installed (they install them), so PGXS is only required for build goals.
PGXS := $(wildcard $(shell $(PG_CONFIG) --pgxs 2>/dev/null))
ifneq ($(PGXS),)
include $(PGXS)
else ifneq ($(filter-out demo test bench deps print-tests valgrind,$(or $(MAKECMDGOALS),all)),)
# The package to name: the major of PG_CONFIG, else the system's default.
PG_MAJOR_HINT := $(shell PG_CONFIG='$(filter-out pg_config,$(PG_CONFIG))' bash -c \
	'. test/tools/pg_major.sh && pg_major_detect && echo $$PG_MAJOR' 2>/dev/null)
$(error PGXS not found (pg_config: $(PG_CONFIG)): install postgresql-server-dev-$(or $(PG_MAJOR_HINT),NN), or run `make deps`)
endif

# PGXS tracks no header dependencies: any header change rebuilds every
# object (a struct layout seen two ways is a silent corruption).
$(OBJS): $(wildcard src/*.h)

# Nor does it notice another PG_CONFIG: objects built against another
# major (or minor) are rebuilt, never linked into this one's library.
PG_VERSION_STAMP := .pg_version
ifneq ($(PGXS),)
$(shell v='$(VERSION)'; [ "$$v" = "$$(cat $(PG_VERSION_STAMP) 2>/dev/null)" ] || echo "$$v" >$(PG_VERSION_STAMP))
$(OBJS) $(OBJS:.o=.bc): $(PG_VERSION_STAMP)
endif

$(EXTENSION)--$(EXTVERSION).sql: src/$(EXTENSION).sql
	cp $< $@

.PHONY: demo test bench deps print-tests valgrind

# The two commands.  Each installs its Debian packages when missing, builds,
# installs, runs on a throwaway cluster and cleans up, also on failure.
demo:
	@bash test/tools/demo.sh

test:
	@bash test/tools/run-tests.sh

# Installs what it needs like the two commands (the data generators are
# Python).  Every benchmark runs, also after one missed a goal; the status
# says whether any did.
bench:
	@bash test/tools/deps.sh </dev/null
	@rc=0; \
	bash test/bench/run-bench.sh || rc=1; \
	bash test/bench/bench-bulk.sh || rc=1; \
	bash test/bench/bench-scale.sh || rc=1; \
	bash test/bench/bench-memory.sh || rc=1; \
	bash test/bench/bench-merge.sh || rc=1; \
	bash test/bench/bench-citus.sh || rc=1; \
	exit $$rc

# The pg_regress suite against a server under valgrind memcheck (slow: about
# 3 minutes; not part of `make test`).
valgrind:
	@bash test/tools/valgrind.sh

deps:
	@bash test/tools/deps.sh

print-tests:
	@echo "REGRESS=$(REGRESS)"
	@echo "ISOLATION=$(ISOLATION)"
