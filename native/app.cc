// App-side primitives: sockets, pipes and memfds for a job, fd passing, and a libuv poll watcher
// that delivers SOCK_SEQPACKET messages (with their fds) to JavaScript.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "fds.h"
#include "napi_util.h"

namespace ns {

static Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return ErrnoError(info.Env(), "socketpair", errno);
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, sv[0]);
  a.Set(1u, sv[1]);
  return a;
}

static Napi::Value Pipe(const Napi::CallbackInfo& info) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return ErrnoError(info.Env(), "pipe2", errno);
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, p[0]);
  a.Set(1u, p[1]);
  return a;
}

// memfdFromBuffers(name, parts): a sealed memfd holding the parts one after the other, written
// straight from their memory (no concatenation in the app's heap).
static Napi::Value MemfdFromBuffers(const Napi::CallbackInfo& info) {
  const char* usage = "memfdFromBuffers(name: string, parts: Uint8Array[]): number";
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray()) return Usage(info.Env(), usage);
  Napi::Array parts = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < parts.Length(); i++) {
    if (!parts.Get(i).IsTypedArray()) return Usage(info.Env(), usage);
  }
  std::string name = info[0].As<Napi::String>();
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return ErrnoError(info.Env(), "memfd_create", errno);
  for (uint32_t i = 0; i < parts.Length(); i++) {
    Napi::Uint8Array data = parts.Get(i).As<Napi::Uint8Array>();
    const uint8_t* p = data.Data();
    size_t left = data.ByteLength();
    while (left > 0) {
      ssize_t n = write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int e = n < 0 ? errno : EIO;
        close(fd);
        return ErrnoError(info.Env(), "write(memfd)", e);
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    int e = errno;
    close(fd);
    return ErrnoError(info.Env(), "fcntl(F_ADD_SEALS)", e);
  }
  lseek(fd, 0, SEEK_SET);
  return Napi::Number::New(info.Env(), fd);
}

// memfdCreate(name): an empty, writable memfd (used where a writer must never block).
static Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) return Usage(info.Env(), "memfdCreate(name: string): number");
  std::string name = info[0].As<Napi::String>();
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) return ErrnoError(info.Env(), "memfd_create", errno);
  return Napi::Number::New(info.Env(), fd);
}

// sendMessage(fd, data, fds): one datagram, fds attached by SCM_RIGHTS.
static Napi::Value SendMessageJs(const Napi::CallbackInfo& info) {
  const char* usage = "sendMessage(socket: number, data: Uint8Array, fds: number[]): void";
  if (info.Length() < 3 || !IsFd(info[0]) || !info[1].IsTypedArray() || !info[2].IsArray()) return Usage(info.Env(), usage);
  Napi::Array list = info[2].As<Napi::Array>();
  if (list.Length() > kMaxMessageFds) return Usage(info.Env(), usage);
  int fds[kMaxMessageFds];
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!IsFd(v)) return Usage(info.Env(), usage);
    fds[i] = v.As<Napi::Number>().Int32Value();
  }
  Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
  int e = SendMessage(info[0].As<Napi::Number>().Int32Value(), data.Data(), data.ByteLength(), fds, static_cast<int>(list.Length()));
  if (e != 0) return ErrnoError(info.Env(), "sendmsg", e);
  return info.Env().Undefined();
}

static Napi::Value Close(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !IsFd(info[0])) return Usage(info.Env(), "close(fd: number): void");
  close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// inheritableFds(): fds of this process without FD_CLOEXEC, above stderr. A spawned zygote
// inherits them; it closes them before anything else so that no job ever can.
static Napi::Value InheritableFds(const Napi::CallbackInfo& info) {
  std::vector<int> fds;
  if (!OpenFds(&fds)) return ErrnoError(info.Env(), "opendir(/proc/self/fd)", errno);
  Napi::Array list = Napi::Array::New(info.Env());
  uint32_t i = 0;
  for (int fd : fds) {
    int flags = fd > 2 ? fcntl(fd, F_GETFD) : -1;
    if (flags >= 0 && (flags & FD_CLOEXEC) == 0) list.Set(i++, fd);
  }
  return list;
}

// pidfdSendSignal(pidfd, signal): true if sent, false if the process is already gone.
static Napi::Value PidfdSendSignal(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !IsFd(info[0]) || !info[1].IsNumber()) return Usage(info.Env(), "pidfdSendSignal(pidfd: number, signal: number): boolean");
  long r = syscall(SYS_pidfd_send_signal, info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(), nullptr, 0);
  if (r == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == ESRCH) return Napi::Boolean::New(info.Env(), false);
  return ErrnoError(info.Env(), "pidfd_send_signal", errno);
}

// MessageWatcher(fd, onMessage[, bytes]): owns fd. onMessage(data: Buffer, fds: number[]) per
// datagram of a SOCK_SEQPACKET socket, or with `bytes`, per read() of a pipe (fds always empty; the
// fd is made non-blocking); onMessage(null, []) once at EOF or error, after which the watcher is
// closed. pause() and resume() stop and restart reading (a reader's backpressure).
class MessageWatcher : public Napi::ObjectWrap<MessageWatcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "MessageWatcher",
        {InstanceMethod("close", &MessageWatcher::CloseJs), InstanceMethod("unref", &MessageWatcher::UnrefJs), InstanceMethod("ref", &MessageWatcher::RefJs),
         InstanceMethod("pause", &MessageWatcher::PauseJs), InstanceMethod("resume", &MessageWatcher::ResumeJs)});
  }

  explicit MessageWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MessageWatcher>(info) {
    if (info.Length() < 2 || !IsFd(info[0]) || !info[1].IsFunction() || (info.Length() > 2 && !info[2].IsBoolean())) {
      Usage(info.Env(), "new MessageWatcher(fd: number, onMessage: (data: Buffer | null, fds: number[]) => void, bytes?: boolean)");
      return;
    }
    fd_ = info[0].As<Napi::Number>().Int32Value();
    bytes_ = info.Length() > 2 && info[2].As<Napi::Boolean>().Value();
    if (bytes_) {
      int flags = fcntl(fd_, F_GETFL);
      if (flags < 0 || fcntl(fd_, F_SETFL, flags | O_NONBLOCK) != 0) {
        ErrnoError(info.Env(), "fcntl(O_NONBLOCK)", errno);
        return;
      }
    }
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = new Napi::AsyncContext(info.Env(), "nodespawner.MessageWatcher");
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(info.Env(), &loop);
    poll_ = new uv_poll_t;
    poll_->data = this;
    int r = uv_poll_init(loop, poll_, fd_);
    if (r == 0) r = uv_poll_start(poll_, UV_READABLE | UV_DISCONNECT, &MessageWatcher::OnPoll);
    if (r != 0) {
      delete poll_;
      poll_ = nullptr;
      Napi::Error::New(info.Env(), std::string("uv_poll_start: ") + uv_strerror(r)).ThrowAsJavaScriptException();
      return;
    }
    Ref();  // alive while polling, whatever JS holds
  }

  ~MessageWatcher() override { delete context_; }

 private:
  static void OnPoll(uv_poll_t* handle, int status, int events) { static_cast<MessageWatcher*>(handle->data)->Drain(status); }

  void Drain(int status) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    // One buffer per thread, reused: a fresh 64 KiB vector per event zeroed 64 KiB every time
    // (every readable pipe of every job). onMessage gets a copy, and no Drain nests in another.
    thread_local std::vector<uint8_t> buf(kMaxMessage);
    for (int i = 0; i < 64 && poll_ != nullptr && !paused_; i++) {
      if (bytes_) {
        ssize_t n = read(fd_, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
          Deliver(env, nullptr, 0, nullptr, 0);
          Stop();
          return;
        }
        Deliver(env, buf.data(), static_cast<size_t>(n), nullptr, 0);
        continue;
      }
      int fds[kMaxMessageFds];
      int nfds = 0;
      bool truncated = false;
      ssize_t n = RecvMessage(fd_, buf.data(), buf.size(), fds, &nfds, true, &truncated);
      if (n == -EAGAIN) return;
      if (n <= 0 || truncated) {
        CloseFds(fds, nfds);
        Deliver(env, nullptr, 0, nullptr, 0);
        Stop();
        return;
      }
      Deliver(env, buf.data(), static_cast<size_t>(n), fds, nfds);
    }
  }

  // Calls onMessage. Raw N-API calls, none of which throws: while Node tears its environment down,
  // JavaScript cannot run any more, and the watcher then stops instead of aborting the process.
  void Deliver(Napi::Env env, const uint8_t* data, size_t len, const int* fds, int nfds) {
    napi_value argv[2], result;
    bool ok = napi_create_array_with_length(env, static_cast<size_t>(nfds), &argv[1]) == napi_ok;
    for (int i = 0; ok && i < nfds; i++) {
      napi_value fd;
      ok = napi_create_int32(env, fds[i], &fd) == napi_ok && napi_set_element(env, argv[1], static_cast<uint32_t>(i), fd) == napi_ok;
    }
    if (ok) {
      ok = data == nullptr ? napi_get_null(env, &argv[0]) == napi_ok : napi_create_buffer_copy(env, len, data, nullptr, &argv[0]) == napi_ok;
    }
    if (ok && napi_make_callback(env, *context_, Value(), callback_.Value(), 2, argv, &result) == napi_ok) return;
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      // The callback threw: an uncaught exception, as for any other callback.
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);
      return;
    }
    CloseFds(fds, nfds);  // JavaScript never got them
    Stop();
  }

  void Stop() {
    if (poll_ == nullptr) return;
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
    close(fd_);
    fd_ = -1;
    Unref();
  }

  // unref(): this watcher alone does not keep the event loop alive.
  Napi::Value UnrefJs(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  // ref(): undoes unref().
  Napi::Value RefJs(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  Napi::Value CloseJs(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  // pause(): no onMessage until resume(); what arrives meanwhile waits in the kernel.
  Napi::Value PauseJs(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr && !paused_) uv_poll_stop(poll_);
    paused_ = true;
    return info.Env().Undefined();
  }

  Napi::Value ResumeJs(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr && paused_) {
      int r = uv_poll_start(poll_, UV_READABLE | UV_DISCONNECT, &MessageWatcher::OnPoll);
      if (r != 0) Napi::Error::New(info.Env(), std::string("uv_poll_start: ") + uv_strerror(r)).ThrowAsJavaScriptException();
    }
    paused_ = false;
    return info.Env().Undefined();
  }

  static constexpr size_t kMaxMessage = 65536;
  bool bytes_ = false;
  bool paused_ = false;
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::AsyncContext* context_ = nullptr;
};

void RegisterApp(Napi::Env env, Napi::Object exports) {
  exports.Set("socketPair", Napi::Function::New(env, SocketPair));
  exports.Set("pipe", Napi::Function::New(env, Pipe));
  exports.Set("memfdFromBuffers", Napi::Function::New(env, MemfdFromBuffers));
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate));
  exports.Set("sendMessage", Napi::Function::New(env, SendMessageJs));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("inheritableFds", Napi::Function::New(env, InheritableFds));
  exports.Set("pidfdSendSignal", Napi::Function::New(env, PidfdSendSignal));
  exports.Set("MessageWatcher", MessageWatcher::Define(env));
}

}  // namespace ns
