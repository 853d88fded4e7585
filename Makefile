# The two commands: `make run` (demo) and `make test` (everything).
# Both install missing Debian packages first (scripts/deps.sh).
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
WIN_BUILD ?= build-win
FUZZ_SECONDS ?= 30
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local

.PHONY: all deps build build-asan run test test-release test-asan test-tsan \
	build-fuzz test-fuzz fuzz test-valgrind bench install clean \
	build-windows test-windows

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

# The command, libmoonport.so/.a, the headers, moonport.pc, the Lua module
# (PREFIX/lib/lua/5.4) and the man page; DESTDIR stages them elsewhere.
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

run: build
	./$(BUILD)/moonport examples/demo.lua

# Every test on every backend, then again under ASan+UBSan; the core's
# threads (posts, threadpool) under TSan; then the Windows build under
# wine.
test: test-release test-asan test-tsan test-fuzz test-windows

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS)

# libFuzzer targets (tests/fuzz, docs/reliability.md) under clang with
# ASan+UBSan: FUZZ_SECONDS each (30 in `make test`, 600 in `make fuzz`),
# one at a time; a crash fails the build with its reproducer saved.
build-fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DMP_FUZZ=ON \
	  -DMP_BUILD_TESTS=OFF -DMP_WERROR=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)

test-fuzz: build-fuzz
	cd $(FUZZ_BUILD) && FUZZ_SECONDS=$(FUZZ_SECONDS) ctest --output-on-failure

fuzz:
	@$(MAKE) --no-print-directory test-fuzz FUZZ_SECONDS=$(if $(filter \
	  command line environment,$(origin FUZZ_SECONDS)),$(FUZZ_SECONDS),600)
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
	@cmake --build $(TSAN_BUILD) -j$(JOBS) --target mp_tests moonport \
	  embed_loop_test
	cd $(TSAN_BUILD) && for b in $$(ctest -N | sed -n 's/.*Test *#[0-9]*: c-//p'); do \
	  [ $$b = seccomp ] && continue; \
	  TSAN_OPTIONS=halt_on_error=1 MOONPORT_BACKEND=$$b ./tests/mp_tests || exit 1; \
	  TSAN_OPTIONS=halt_on_error=1 MOONPORT_BACKEND=$$b \
	    timeout 300 ./tests/embed_loop_test || exit 1; done
	# The torture parts where threads do the work (files and FIFOs on the
	# threadpool under epoll) and the stress mix, with the command.
	TSAN_OPTIONS=halt_on_error=1 MOONPORT_BACKEND=epoll timeout 120 \
	  $(TSAN_BUILD)/moonport tests/e2e/stress.lua 5
	for p in writefile fifo; do \
	  TSAN_OPTIONS=halt_on_error=1 MOONPORT_BACKEND=epoll timeout 120 \
	    $(TSAN_BUILD)/moonport tests/e2e/torture.lua $$p 3 || exit 1; done

# Windows (docs/windows.md): cross-compiled with mingw-w64 into
# $(WIN_BUILD) (leaving $(WIN_BUILD)/moonport.exe, with Lua built from
# Debian's source package), tested under wine64.
build-windows: deps
	@cmake -S . -B $(WIN_BUILD) -DMP_WERROR=ON -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/mingw-w64-x86_64.cmake >/dev/null
	@cmake --build $(WIN_BUILD) -j$(JOBS)

# One test at a time: two wine test processes side by side have stalled
# (fs_spec, minutes) on this shared machine; serially the leg takes ~2 min.
# A failed test runs once more (its first failure stays in the log): wine
# itself fails a process start now and then (CreateProcess error 1359, the
# child's loader dying before it runs), which a spec that spawns cannot
# tell from a failure of ours. The Linux legs, which test the same code
# paths natively, get no second run.
test-windows: build-windows
	cd $(WIN_BUILD) && ctest --output-on-failure --repeat until-pass:2

bench: build
	@MP_DEPS_EXTRA="lua-luv lua-cqueues wrk time" sh scripts/deps.sh
	@for b in bench/*.sh; do echo "== $$b"; bash $$b; done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) $(WIN_BUILD)
