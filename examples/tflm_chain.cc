// Run a restnet-compile MCU bundle with TensorFlow Lite Micro: pick the most accurate variant that fits the RAM
// and latency budget from the generated variant table, then run its chain of segments in one tensor arena.
//
// Build it with the bundle's model_data.cc and your TFLite Micro library:
//   g++ -std=c++17 -I<bundle> -I<tflite-micro> tflm_chain.cc <bundle>/model_data.cc <tflm objects>
// Every segment is one TFLite Micro model. The chain runs segment by segment in the same arena: after a segment,
// its output is copied to a boundary buffer, the next segment's interpreter is created over the arena, and the
// buffer is copied into its input, requantized where the two int8 scales differ.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "model_data.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

// The budget: what this firmware can spare for the model now (here: every variant's arena; a 90 ms deadline).
constexpr float kLatencyBudgetMs = 90.0f;

alignas(16) uint8_t g_arena[RESTNET_MAX_ARENA_BYTES];
alignas(16) int8_t g_boundary[RESTNET_MAX_BOUNDARY_BYTES > 0 ? RESTNET_MAX_BOUNDARY_BYTES : 1];

// The most accurate variant whose arena and boundary buffer fit ram_bytes and whose estimated latency fits
// latency_ms (ties: the faster one); nullptr when none does.
const RestnetVariant* SelectVariant(unsigned int ram_bytes, float latency_ms) {
  const RestnetVariant* best = nullptr;
  for (unsigned int i = 0; i < g_restnet_variants_len; ++i) {
    const RestnetVariant& v = g_restnet_variants[i];
    if (v.arena_bytes + v.boundary_bytes > ram_bytes || v.latency_ms > latency_ms) continue;
    if (best == nullptr || v.accuracy > best->accuracy ||
        (v.accuracy == best->accuracy && v.latency_ms < best->latency_ms)) {
      best = &v;
    }
  }
  return best;
}

// q_out = round((q_in - z_in) * s_in / s_out) + z_out, clamped to int8; a plain copy when both agree.
void Requantize(const int8_t* in, const RestnetSegment& from, int8_t* out, const RestnetSegment& to) {
  const unsigned int n = to.input_bytes;
  if (from.output_scale == to.input_scale && from.output_zero_point == to.input_zero_point) {
    std::memcpy(out, in, n);
    return;
  }
  const float ratio = from.output_scale / to.input_scale;
  for (unsigned int i = 0; i < n; ++i) {
    const long q = std::lround((in[i] - from.output_zero_point) * ratio) + to.input_zero_point;
    out[i] = static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
  }
}

// The operators of the demo bundles; add the ones your segments use (the manifest lists them per variant).
using Resolver = tflite::MicroMutableOpResolver<12>;
void AddOps(Resolver& r) {
  r.AddConv2D();
  r.AddDepthwiseConv2D();
  r.AddFullyConnected();
  r.AddMaxPool2D();
  r.AddAveragePool2D();
  r.AddMean();
  r.AddReshape();
  r.AddAdd();
  r.AddMul();
  r.AddPad();
  r.AddQuantize();
  r.AddDequantize();
}

// Runs variant v on an int8 image (quantized as its first segment's input); writes int8 logits to `logits`.
TfLiteStatus RunVariant(const RestnetVariant& v, const int8_t* image, int8_t* logits, unsigned int logits_len) {
  static Resolver resolver;
  static bool ops_added = false;
  if (!ops_added) {
    AddOps(resolver);
    ops_added = true;
  }
  for (unsigned int k = 0; k < v.chain_len; ++k) {
    const RestnetSegment& seg = g_restnet_segments[v.chain[k]];
    tflite::MicroInterpreter interpreter(tflite::GetModel(seg.model), resolver, g_arena, sizeof(g_arena));
    if (interpreter.AllocateTensors() != kTfLiteOk) return kTfLiteError;
    int8_t* input = interpreter.input(0)->data.int8;
    if (k == 0) {
      std::memcpy(input, image, seg.input_bytes);
    } else {
      Requantize(g_boundary, g_restnet_segments[v.chain[k - 1]], input, seg);
    }
    if (interpreter.Invoke() != kTfLiteOk) return kTfLiteError;
    const int8_t* output = interpreter.output(0)->data.int8;
    if (k + 1 < v.chain_len) {
      std::memcpy(g_boundary, output, seg.output_bytes);
    } else {
      std::memcpy(logits, output, seg.output_bytes < logits_len ? seg.output_bytes : logits_len);
    }
  }
  return kTfLiteOk;
}

}  // namespace

int main() {
  const RestnetVariant* v = SelectVariant(sizeof(g_arena) + sizeof(g_boundary), kLatencyBudgetMs);
  if (v == nullptr) {
    std::printf("no variant fits the budget\n");
    return 1;
  }
  const RestnetSegment& first = g_restnet_segments[v->chain[0]];
  static int8_t image[4096];
  const unsigned int n = first.input_bytes < sizeof(image) ? first.input_bytes : sizeof(image);
  for (unsigned int i = 0; i < n; ++i) image[i] = static_cast<int8_t>(first.input_zero_point);  // a black image
  int8_t logits[64];
  if (RunVariant(*v, image, logits, sizeof(logits)) != kTfLiteOk) {
    std::printf("variant %s failed\n", v->id);
    return 1;
  }
  std::printf("variant %s: %u segments, arena %u B + boundary %u B, logit[0] %d\n", v->id, v->chain_len,
              v->arena_bytes, v->boundary_bytes, logits[0]);
  return 0;
}
