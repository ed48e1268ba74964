// restnet-compile device runtime for TensorFlow Lite Micro: pick a variant by budget, run its chain of segments in
// one tensor arena, requantizing at the boundaries. Generated with the bundle's model_data.h; plain C++17.
#ifndef RESTNET_RUNTIME_H_
#define RESTNET_RUNTIME_H_

#include <cstddef>
#include <cstdint>

#include "model_data.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"

namespace restnet {

// The most accurate variant whose tensor arena on this CPU (ArenaBytes, restnet_arena.h) plus boundary buffer fits
// ram_bytes and whose estimated latency fits latency_ms (ties: the faster one); nullptr when none does.
const RestnetVariant* Select(unsigned int ram_bytes, float latency_ms);

// The variant called `id`; nullptr when the bundle has none.
const RestnetVariant* Find(const char* id);

// The first and last segment of a variant's chain: its input and output quantization.
const RestnetSegment& InputSegment(const RestnetVariant& v);
const RestnetSegment& OutputSegment(const RestnetVariant& v);

// q_out = clamp(rint((q_in - z_in) * s_in / s_out + z_out)) in float32, the same values as the bundle's Python
// runtime; a plain copy when both quantizations agree.
void Requantize(const int8_t* in, const RestnetSegment& from, int8_t* out, const RestnetSegment& to);

// Runs variants segment by segment: one MicroInterpreter at a time over one arena, the tensor between two segments
// kept in the boundary buffer.
class ChainRunner {
 public:
  ChainRunner(const tflite::MicroOpResolver& resolver, uint8_t* arena, size_t arena_bytes, int8_t* boundary,
              size_t boundary_bytes);

  // Runs `v` on `input` (quantized as InputSegment(v)); writes OutputSegment(v).output_bytes int8 values to output.
  TfLiteStatus Run(const RestnetVariant& v, const int8_t* input, int8_t* output);

  // The largest arena (bytes) any segment of the last Run used, as TFLite Micro reports it.
  size_t arena_used_bytes() const { return arena_used_bytes_; }

 private:
  const tflite::MicroOpResolver& resolver_;
  uint8_t* arena_;
  size_t arena_bytes_;
  int8_t* boundary_;
  size_t boundary_bytes_;
  size_t arena_used_bytes_ = 0;
};

}  // namespace restnet

#endif  // RESTNET_RUNTIME_H_
