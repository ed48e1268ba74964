// restnet-compile firmware main: runs every variant of the bundle on its reference inputs and prints, one line each,
// the int8 outputs, the arena TFLite Micro used, and the variant each budget selects. Lines start with "restnet:".
#include <cstdio>

#include "model_data.h"
#include "restnet_arena.h"
#include "reference_data.h"
#include "restnet_ops.h"
#include "restnet_runtime.h"

// The arena: the largest a variant needs on this CPU (restnet_arena.h: the estimate with TFLite Micro's bookkeeping
// laid out for this core's pointers). CMSIS-NN kernels also take scratch buffers (im2col and the like) from the
// arena, which that estimate leaves out: a quarter more is reserved for them (bench/results/firmware.json measures
// what they took), and the run prints what each variant used. Define RESTNET_ARENA_BYTES to reserve another size.
#ifndef RESTNET_ARENA_BYTES
#ifdef CMSIS_NN
#define RESTNET_ARENA_BYTES ((RESTNET_CPU_ARENA_BYTES + RESTNET_CPU_ARENA_BYTES / 4 + 15) / 16 * 16)
#else
#define RESTNET_ARENA_BYTES RESTNET_CPU_ARENA_BYTES
#endif
#endif

namespace {

alignas(16) uint8_t g_arena[RESTNET_ARENA_BYTES];
alignas(16) int8_t g_boundary[RESTNET_MAX_BOUNDARY_BYTES > 0 ? RESTNET_MAX_BOUNDARY_BYTES : 1];
int8_t g_output[RESTNET_MAX_OUTPUT_BYTES];

// Runs variant v on every reference input; returns false when a run fails.
bool RunVariant(restnet::ChainRunner& runner, const RestnetVariant& v) {
  const int8_t* inputs = restnet::ReferenceInputs(v.id);
  const unsigned int in_bytes = restnet::InputSegment(v).input_bytes;
  const unsigned int out_bytes = restnet::OutputSegment(v).output_bytes;
  size_t peak = 0;
  for (unsigned int n = 0; n < RESTNET_REFERENCE_COUNT; ++n) {
    if (inputs == nullptr || runner.Run(v, inputs + n * in_bytes, g_output) != kTfLiteOk) {
      std::printf("restnet: fail %s %u\n", v.id, n);
      return false;
    }
    if (runner.arena_used_bytes() > peak) peak = runner.arena_used_bytes();
    std::printf("restnet: out %s %u", v.id, n);
    for (unsigned int j = 0; j < out_bytes; ++j) std::printf(" %d", static_cast<int>(g_output[j]));
    std::printf("\n");
  }
  std::printf("restnet: arena %s %u %u\n", v.id, static_cast<unsigned>(peak), restnet::ArenaBytes(v));
  return true;
}

}  // namespace

int main() {
  static restnet::Resolver resolver;
  restnet::AddOps(resolver);
  restnet::ChainRunner runner(resolver, g_arena, sizeof(g_arena), g_boundary, sizeof(g_boundary));
  std::printf("restnet: begin %u %u %u\n", g_restnet_variants_len, static_cast<unsigned>(RESTNET_REFERENCE_COUNT),
              static_cast<unsigned>(sizeof(g_arena)));
  int failures = 0;
  for (unsigned int i = 0; i < g_restnet_variants_len; ++i) failures += RunVariant(runner, g_restnet_variants[i]) ? 0 : 1;
  // A device picks per call what it can afford: here the whole static RAM and no deadline, then each variant's own
  // latency as the deadline.
  const unsigned int ram = sizeof(g_arena) + sizeof(g_boundary);
  const RestnetVariant* best = restnet::Select(ram, 1e30f);
  std::printf("restnet: select %u inf %s\n", ram, best != nullptr ? best->id : "-");
  for (unsigned int i = 0; i < g_restnet_variants_len; ++i) {
    const RestnetVariant* pick = restnet::Select(ram, g_restnet_variants[i].latency_ms);
    std::printf("restnet: select %u %g %s\n", ram, static_cast<double>(g_restnet_variants[i].latency_ms),
                pick != nullptr ? pick->id : "-");
  }
  std::printf("restnet: end %d\n", failures);
  std::fflush(stdout);
  return failures == 0 ? 0 : 1;
}
