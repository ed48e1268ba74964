// restnet-compile device runtime for TensorFlow Lite Micro (see restnet_runtime.h).
#include "restnet_runtime.h"

#include <cmath>
#include <cstring>

#include "restnet_arena.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace restnet {

const RestnetVariant* Select(unsigned int ram_bytes, float latency_ms) {
  const RestnetVariant* best = nullptr;
  for (unsigned int i = 0; i < g_restnet_variants_len; ++i) {
    const RestnetVariant& v = g_restnet_variants[i];
    if (ArenaBytes(v) + v.boundary_bytes > ram_bytes || v.latency_ms > latency_ms) continue;
    if (best == nullptr || v.accuracy > best->accuracy ||
        (v.accuracy == best->accuracy && v.latency_ms < best->latency_ms)) {
      best = &v;
    }
  }
  return best;
}

const RestnetVariant* Find(const char* id) {
  for (unsigned int i = 0; i < g_restnet_variants_len; ++i) {
    if (std::strcmp(g_restnet_variants[i].id, id) == 0) return &g_restnet_variants[i];
  }
  return nullptr;
}

const RestnetSegment& InputSegment(const RestnetVariant& v) { return g_restnet_segments[v.chain[0]]; }

const RestnetSegment& OutputSegment(const RestnetVariant& v) { return g_restnet_segments[v.chain[v.chain_len - 1]]; }

void Requantize(const int8_t* in, const RestnetSegment& from, int8_t* out, const RestnetSegment& to) {
  const unsigned int n = to.input_bytes;
  if (from.output_scale == to.input_scale && from.output_zero_point == to.input_zero_point) {
    std::memcpy(out, in, n);
    return;
  }
  // float32 throughout, in the order the Python runtime computes it: dequantize, divide, add, round half to even
  const float s_in = from.output_scale, s_out = to.input_scale;
  const float z_out = static_cast<float>(to.input_zero_point);
  for (unsigned int i = 0; i < n; ++i) {
    const float x = static_cast<float>(in[i] - from.output_zero_point) * s_in;
    const float q = std::nearbyint(x / s_out + z_out);
    out[i] = static_cast<int8_t>(q < -128.0f ? -128 : (q > 127.0f ? 127 : static_cast<int>(q)));
  }
}

ChainRunner::ChainRunner(const tflite::MicroOpResolver& resolver, uint8_t* arena, size_t arena_bytes,
                         int8_t* boundary, size_t boundary_bytes)
    : resolver_(resolver),
      arena_(arena),
      arena_bytes_(arena_bytes),
      boundary_(boundary),
      boundary_bytes_(boundary_bytes) {}

TfLiteStatus ChainRunner::Run(const RestnetVariant& v, const int8_t* input, int8_t* output) {
  arena_used_bytes_ = 0;
  for (unsigned int k = 0; k < v.chain_len; ++k) {
    const RestnetSegment& seg = g_restnet_segments[v.chain[k]];
    tflite::MicroInterpreter interpreter(tflite::GetModel(seg.model), resolver_, arena_, arena_bytes_);
    if (interpreter.AllocateTensors() != kTfLiteOk) {
      MicroPrintf("segment %s does not fit the %u-byte arena", seg.id, static_cast<unsigned>(arena_bytes_));
      return kTfLiteError;
    }
    TfLiteTensor* in = interpreter.input(0);
    if (in->type != kTfLiteInt8 || in->bytes != seg.input_bytes) {
      MicroPrintf("segment %s: its input is not the %u int8 values the table records", seg.id, seg.input_bytes);
      return kTfLiteError;
    }
    if (k == 0) {
      std::memcpy(in->data.int8, input, seg.input_bytes);
    } else {
      Requantize(boundary_, g_restnet_segments[v.chain[k - 1]], in->data.int8, seg);
    }
    if (interpreter.Invoke() != kTfLiteOk) return kTfLiteError;
    const TfLiteTensor* out = interpreter.output(0);
    if (out->bytes != seg.output_bytes || (k + 1 < v.chain_len && seg.output_bytes > boundary_bytes_)) {
      MicroPrintf("segment %s: its output is not the %u int8 values the table records", seg.id, seg.output_bytes);
      return kTfLiteError;
    }
    std::memcpy(k + 1 < v.chain_len ? boundary_ : output, out->data.int8, seg.output_bytes);
    const size_t used = interpreter.arena_used_bytes();
    if (used > arena_used_bytes_) arena_used_bytes_ = used;
  }
  return kTfLiteOk;
}

}  // namespace restnet
