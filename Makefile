# The two commands: `make run` (demo) and `make test` (everything).
# Both install missing Debian packages first (scripts/deps.sh).
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS ?= $(shell nproc)

.PHONY: all deps build build-asan run test test-release test-asan test-tsan \
	test-valgrind bench clean

all: build

deps:
	@sh scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DMP_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DMP_WERROR=ON -DMP_SANITIZE=ON \
	  -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

run: build
	./$(BUILD)/moonport examples/demo.lua

# Every test on every backend, then again under ASan+UBSan; the core's
# threads (posts, threadpool) under TSan.
test: test-release test-asan test-tsan

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS)

# Memcheck over the C tests and the busted specs, epoll backend (valgrind
# cannot see io_uring's kernel-side accesses). Not part of `make test`:
# it takes minutes. Suppressions, each justified: tests/valgrind.supp.
VALGRIND = valgrind --quiet --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite --show-leak-kinds=definite \
	--suppressions=$(CURDIR)/tests/valgrind.supp
test-valgrind: build
	@MP_DEPS_EXTRA=valgrind sh scripts/deps.sh
	cd $(BUILD) && MOONPORT_BACKEND=epoll $(VALGRIND) ./tests/mp_tests
	cd tests/lua && for s in *_spec.lua; do echo "== $$s"; \
	  MOONPORT_BACKEND=epoll MP_EXPECT_BACKEND=epoll \
	  MOONPORT=$(CURDIR)/$(BUILD)/moonport \
	  LUA_CPATH="$(CURDIR)/$(BUILD)/lib/?.so;;" LUA_PATH="./?.lua;;" \
	  $(VALGRIND) lua5.4 /usr/bin/busted -o utfTerminal $$s || exit 1; done

# Peers for the benchmarks (Node.js is used when present, not installed).
test-tsan: deps
	@cmake -S . -B $(TSAN_BUILD) -DMP_WERROR=ON -DMP_TSAN=ON >/dev/null
	@cmake --build $(TSAN_BUILD) -j$(JOBS) --target mp_tests
	cd $(TSAN_BUILD) && for b in $$(ctest -N | sed -n 's/.*Test *#[0-9]*: c-//p'); do \
	  [ $$b = seccomp ] && continue; \
	  TSAN_OPTIONS=halt_on_error=1 MOONPORT_BACKEND=$$b ./tests/mp_tests || exit 1; done

bench: build
	@MP_DEPS_EXTRA="lua-luv lua-cqueues wrk time" sh scripts/deps.sh
	@for b in bench/*.sh; do echo "== $$b"; bash $$b; done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
