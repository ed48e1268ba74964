// Minimal stand-in for TensorFlow Lite Micro's MicroInterpreter, enough to compile and link examples/tflm_chain.cc
// in tests (the TFLM sources are not vendored). Same names and signatures as the real API.
#ifndef RESTNET_TEST_STUB_MICRO_INTERPRETER_H_
#define RESTNET_TEST_STUB_MICRO_INTERPRETER_H_

#include <cstddef>
#include <cstdint>

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

typedef enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

typedef struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef union TfLitePtrUnion {
  int8_t* int8;
  float* f;
  void* data;
} TfLitePtrUnion;

typedef struct TfLiteTensor {
  TfLitePtrUnion data;
  size_t bytes;
  TfLiteQuantizationParams params;
} TfLiteTensor;

namespace tflite {

class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver, uint8_t* tensor_arena,
                   size_t tensor_arena_size);
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);

 private:
  uint8_t* arena_;
  size_t arena_size_;
  TfLiteTensor input_;
  TfLiteTensor output_;
};

}  // namespace tflite

#endif  // RESTNET_TEST_STUB_MICRO_INTERPRETER_H_
