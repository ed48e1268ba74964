// Minimal stand-in for the TFLite flatbuffer schema's GetModel (see micro_interpreter.h).
#ifndef RESTNET_TEST_STUB_SCHEMA_GENERATED_H_
#define RESTNET_TEST_STUB_SCHEMA_GENERATED_H_

namespace tflite {

struct Model;
const Model* GetModel(const void* buf);

}  // namespace tflite

#endif  // RESTNET_TEST_STUB_SCHEMA_GENERATED_H_
