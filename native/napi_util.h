// Small helpers for argument checking in the N-API glue: bad native arguments are a TypeError
// that says how to call the function.
#pragma once
#include <napi.h>

namespace ns {

inline Napi::Value Usage(const Napi::Env& env, const char* usage) {
  Napi::TypeError::New(env, std::string("Usage: ") + usage).ThrowAsJavaScriptException();
  return env.Undefined();
}

inline Napi::Value ErrnoError(const Napi::Env& env, const char* syscall, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + ": " + strerror(err));
  e.Set("syscall", syscall);
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

inline bool IsFd(const Napi::Value& v) { return v.IsNumber() && v.As<Napi::Number>().Int32Value() >= 0; }

}  // namespace ns
