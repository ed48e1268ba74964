// Minimal stand-in for TensorFlow Lite Micro's MicroMutableOpResolver (see micro_interpreter.h).
#ifndef RESTNET_TEST_STUB_MICRO_MUTABLE_OP_RESOLVER_H_
#define RESTNET_TEST_STUB_MICRO_MUTABLE_OP_RESOLVER_H_

namespace tflite {

class MicroOpResolver {
 public:
  virtual ~MicroOpResolver() = default;
};

template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {
 public:
  int AddAdd() { return Add(); }
  int AddAveragePool2D() { return Add(); }
  int AddConv2D() { return Add(); }
  int AddDepthwiseConv2D() { return Add(); }
  int AddDequantize() { return Add(); }
  int AddFullyConnected() { return Add(); }
  int AddMaxPool2D() { return Add(); }
  int AddMean() { return Add(); }
  int AddMul() { return Add(); }
  int AddPad() { return Add(); }
  int AddQuantize() { return Add(); }
  int AddReshape() { return Add(); }
  int AddSoftmax() { return Add(); }
  unsigned int count() const { return count_; }

 private:
  int Add() { return count_ < tOpCount ? (++count_, 0) : 1; }
  unsigned int count_ = 0;
};

}  // namespace tflite

#endif  // RESTNET_TEST_STUB_MICRO_MUTABLE_OP_RESOLVER_H_
