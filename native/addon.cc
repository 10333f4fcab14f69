// The addon's exports. App-side primitives live in app.cc, zygote-side ones in zygote.cc.
#include <napi.h>

namespace ns {
void RegisterApp(Napi::Env env, Napi::Object exports);
void RegisterZygote(Napi::Env env, Napi::Object exports);
}  // namespace ns

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ns::RegisterApp(env, exports);
  ns::RegisterZygote(env, exports);
  return exports;
}

NODE_API_MODULE(nodespawner, Init)
