// Thrift binary-protocol writer for the JobEvent structs that the native intermediate process
// sends (thrift/nodespawner.thrift is the source of truth; field ids below must match it).
// Fixed-size stack buffer, no allocation: this runs between fork() and _exit().
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace ns {

class WireWriter {
 public:
  static constexpr size_t kCapacity = 32768;

  void BeginStruct(int16_t id) { Header(12, id); }  // T_STRUCT
  void EndStruct() { Byte(0); }                     // T_STOP
  void I32(int16_t id, int32_t v) {
    Header(8, id);
    Be32(static_cast<uint32_t>(v));
  }
  void I64(int16_t id, int64_t v) {
    Header(10, id);
    Be32(static_cast<uint32_t>(static_cast<uint64_t>(v) >> 32));
    Be32(static_cast<uint32_t>(v));
  }
  void String(int16_t id, const char* s) {
    size_t n = strnlen(s, 256);
    Header(11, id);
    Be32(static_cast<uint32_t>(n));
    Bytes(s, n);
  }
  void StringList(int16_t id, const std::vector<std::string>& items) {
    Header(15, id);  // T_LIST
    Byte(11);        // of T_STRING
    Be32(static_cast<uint32_t>(items.size()));
    for (const std::string& s : items) {
      Be32(static_cast<uint32_t>(s.size()));
      Bytes(s.data(), s.size());
    }
  }
  const uint8_t* data() const { return buf_; }
  size_t size() const { return overflow_ ? 0 : len_; }

 private:
  void Header(uint8_t type, int16_t id) {
    Byte(type);
    Byte(static_cast<uint8_t>(id >> 8));
    Byte(static_cast<uint8_t>(id));
  }
  void Be32(uint32_t v) {
    Byte(v >> 24);
    Byte(v >> 16);
    Byte(v >> 8);
    Byte(v);
  }
  void Byte(uint8_t b) {
    if (len_ < kCapacity) buf_[len_++] = b;
    else overflow_ = true;
  }
  void Bytes(const char* s, size_t n) {
    for (size_t i = 0; i < n; i++) Byte(static_cast<uint8_t>(s[i]));
  }
  uint8_t buf_[kCapacity];
  size_t len_ = 0;
  bool overflow_ = false;
};

// JobEvent union field ids.
enum JobEventField : int16_t { kStarted = 1, kSetupFailed = 2, kExited = 3 };

}  // namespace ns
