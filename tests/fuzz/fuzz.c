/* libFuzzer driver: build with -DFUZZ_TARGET=fuzz_safetensors (or fuzz_idx,
   fuzz_model, fuzz_api) and -fsanitize=fuzzer,address,undefined. */
#define AR_IMPLEMENTATION
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return FUZZ_TARGET(data, size); }
