// Zygote-side glue: the blocking control-socket read, the fork, and the child's exit.
// Nothing here touches libuv handles: the zygote serves from a synchronous loop.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "fds.h"
#include "child.h"
#include "fork.h"
#include "memory.h"
#include "landlock.h"
#include "seccomp.h"
#include "napi_util.h"

namespace ns {

constexpr int kControlFdMin = 1000;

// The spawner's cgroup directories, removed by the zygote when the app dies before it serves.
// Copied here at init: the signal handler that removes them may not allocate.
constexpr int kMaxCleanupDirs = 8;
static char cleanupDirs[kMaxCleanupDirs][4096];
static int cleanupDirCount = 0;

// SIGTERM, the zygote's parent death signal until it serves: the app died while the zygote was
// starting (no job cgroup exists yet). Removes the spawner's cgroup directories and exits.
static void AppDiedWhileStarting(int) {
  for (int i = 0; i < cleanupDirCount; i++) rmdir(cleanupDirs[i]);
  _exit(0);
}

// zygoteInit(controlFd, appPid, cleanupDirs): follow the app's death, reap intermediates
// automatically, and move the control socket to a high CLOEXEC number. Returns the new control
// fd. Until serving(), the app's death removes cleanupDirs and ends the zygote; from then on, the
// serve loop sees it as EOF on the control socket and cleans up what the jobs left.
static Napi::Value ZygoteInit(const Napi::CallbackInfo& info) {
  if (info.Length() < 3 || !IsFd(info[0]) || !info[1].IsNumber() || !info[2].IsArray()) {
    return Usage(info.Env(), "zygoteInit(controlFd: number, appPid: number, cleanupDirs: string[]): number");
  }
  Napi::Array dirs = info[2].As<Napi::Array>();
  cleanupDirCount = 0;
  for (uint32_t i = 0; i < dirs.Length(); i++) {
    Napi::Value d = dirs.Get(i);
    if (!d.IsString() || i >= kMaxCleanupDirs)
      return Usage(info.Env(), "zygoteInit(controlFd: number, appPid: number, cleanupDirs: string[] (at most 8)): number");
    std::string dir = d.As<Napi::String>();
    if (dir.size() >= sizeof cleanupDirs[0])
      return Usage(info.Env(), "zygoteInit(controlFd: number, appPid: number, cleanupDirs: string[] (paths shorter than 4096)): number");
    memcpy(cleanupDirs[cleanupDirCount], dir.c_str(), dir.size() + 1);
    cleanupDirCount++;
  }
  struct sigaction term = {};
  term.sa_handler = AppDiedWhileStarting;
  sigemptyset(&term.sa_mask);
  if (sigaction(SIGTERM, &term, nullptr) != 0) return ErrnoError(info.Env(), "sigaction(SIGTERM)", errno);
  if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0) return ErrnoError(info.Env(), "prctl(PR_SET_PDEATHSIG)", errno);
  if (getppid() != info[1].As<Napi::Number>().Int32Value()) AppDiedWhileStarting(0);
  struct sigaction sa = {};
  sa.sa_handler = SIG_IGN;
  sa.sa_flags = SA_NOCLDWAIT;
  if (sigaction(SIGCHLD, &sa, nullptr) != 0) return ErrnoError(info.Env(), "sigaction(SIGCHLD)", errno);
  int fd = MoveFdAbove(info[0].As<Napi::Number>().Int32Value(), kControlFdMin);
  if (fd < 0) return ErrnoError(info.Env(), "fcntl(F_DUPFD_CLOEXEC)", -fd);
  return Napi::Number::New(info.Env(), fd);
}

// installZygoteFilter(program): no_new_privs (an unprivileged zygote needs it for seccomp), then
// the zygote's own seccomp filter (lib/seccomp/policy.ts zygotePolicy), which every intermediate
// and job inherits. An empty program installs nothing.
static Napi::Value InstallZygoteFilter(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsBuffer()) return Usage(info.Env(), "installZygoteFilter(program: Buffer): void");
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  if (b.Length() == 0) return info.Env().Undefined();
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return ErrnoError(info.Env(), "prctl(PR_SET_NO_NEW_PRIVS)", errno);
  std::vector<uint8_t> program(b.Data(), b.Data() + b.Length());
  Failure f;
  if (!InstallSeccomp(program, &f)) return ErrnoError(info.Env(), f.syscall, f.err);
  return info.Env().Undefined();
}

// serving(appPid): called before the zygote's first fork. The app's death no longer ends the
// zygote by a signal (no forked process may inherit that handler): the serve loop sees it as EOF
// and cleans up. Returns whether the app is still alive.
static Napi::Value Serving(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) return Usage(info.Env(), "serving(appPid: number): boolean");
  if (prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0) != 0) return ErrnoError(info.Env(), "prctl(PR_SET_PDEATHSIG)", errno);
  // Unless preloaded code took SIGTERM over (then it is its handler).
  struct sigaction current = {};
  if (sigaction(SIGTERM, nullptr, &current) == 0 && current.sa_handler == AppDiedWhileStarting) {
    struct sigaction dfl = {};
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &dfl, nullptr);
  }
  return Napi::Boolean::New(info.Env(), getppid() == info[0].As<Napi::Number>().Int32Value());
}

// hasChildren(): whether this process has a child left (the zygote's children are reaped as they
// exit, so every child it has is alive).
static Napi::Value HasChildren(const Napi::CallbackInfo& info) {
  siginfo_t si = {};
  return Napi::Boolean::New(info.Env(), waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0);
}

// recvRequest(fd): blocks for one datagram. Returns {data, fds}, or null at EOF.
static Napi::Value RecvRequest(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !IsFd(info[0])) return Usage(info.Env(), "recvRequest(fd: number): {data: Buffer, fds: number[]} | null");
  static uint8_t buf[65536];
  int fds[kMaxMessageFds];
  int nfds = 0;
  bool truncated = false;
  ssize_t n = RecvMessage(info[0].As<Napi::Number>().Int32Value(), buf, sizeof buf, fds, &nfds, false, &truncated);
  if (n < 0) return ErrnoError(info.Env(), "recvmsg", static_cast<int>(-n));
  if (n == 0) return info.Env().Null();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("data", Napi::Buffer<uint8_t>::Copy(info.Env(), buf, static_cast<size_t>(n)));
  Napi::Array list = Napi::Array::New(info.Env(), nfds);
  for (int i = 0; i < nfds; i++) list.Set(static_cast<uint32_t>(i), fds[i]);
  out.Set("fds", list);
  out.Set("truncated", Napi::Boolean::New(info.Env(), truncated));
  out.Set("receivedNs", Napi::BigInt::New(info.Env(), static_cast<int64_t>(MonotonicNs())));
  return out;
}

// readable(fd, timeoutMs = 0): whether a read on fd would not block (a request is waiting, or
// EOF), waiting up to timeoutMs for it.
static Napi::Value Readable(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !IsFd(info[0])) return Usage(info.Env(), "readable(fd: number, timeoutMs?: number): boolean");
  int timeout = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  struct pollfd p = {info[0].As<Napi::Number>().Int32Value(), POLLIN, 0};
  int n;
  do {
    n = poll(&p, 1, timeout < 0 ? 0 : timeout);
  } while (n < 0 && errno == EINTR);
  return Napi::Boolean::New(info.Env(), n > 0);
}

static int Int(const Napi::Object& o, const char* key, bool* ok) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) {
    *ok = false;
    return -1;
  }
  return v.As<Napi::Number>().Int32Value();
}

static bool ParseMounts(const Napi::Value& v, std::vector<MountOp>* out) {
  if (!v.IsArray()) return false;
  Napi::Array list = v.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value e = list.Get(i);
    if (!e.IsObject()) return false;
    Napi::Object o = e.As<Napi::Object>();
    bool ok = true;
    int kind = Int(o, "kind", &ok);
    Napi::Value source = o.Get("source"), target = o.Get("target"), size = o.Get("sizeBytes");
    if (!ok || kind < static_cast<int>(MountKind::kBind) || kind > static_cast<int>(MountKind::kSymlink) || !source.IsString() || !target.IsString() ||
        !size.IsNumber())
      return false;
    std::string t = target.As<Napi::String>();
    if (t.empty() || t[0] != '/' || t.size() > 3000) return false;
    Napi::Value content = o.Get("content");
    if (kind == static_cast<int>(MountKind::kFile) && (!content.IsString() || content.As<Napi::String>().Utf8Value().size() > 65536)) return false;
    out->push_back({static_cast<MountKind>(kind), source.As<Napi::String>(), t, o.Get("writable").ToBoolean().Value(),
                    static_cast<int64_t>(size.As<Napi::Number>().DoubleValue()), content.IsString() ? content.As<Napi::String>().Utf8Value() : std::string()});
  }
  return true;
}

static bool ParseLandlock(const Napi::Object& o, ForkRequest* r) {
  Napi::Value handled = o.Get("landlockHandled"), scoped = o.Get("landlockScoped"), rules = o.Get("landlock");
  if (!handled.IsNumber() || !scoped.IsNumber() || !rules.IsArray()) return false;
  r->landlockHandled = static_cast<uint64_t>(handled.As<Napi::Number>().DoubleValue());
  r->landlockScoped = static_cast<uint64_t>(scoped.As<Napi::Number>().DoubleValue());
  Napi::Array list = rules.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value e = list.Get(i);
    if (!e.IsObject()) return false;
    Napi::Value path = e.As<Napi::Object>().Get("path"), access = e.As<Napi::Object>().Get("access");
    if (!path.IsString() || !access.IsNumber()) return false;
    r->landlock.push_back({path.As<Napi::String>(), static_cast<uint64_t>(access.As<Napi::Number>().DoubleValue())});
  }
  return true;
}

static bool ParseStrings(const Napi::Value& v, std::vector<std::string>* out) {
  if (!v.IsArray()) return false;
  Napi::Array list = v.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value e = list.Get(i);
    if (!e.IsString()) return false;
    out->push_back(e.As<Napi::String>());
  }
  return true;
}

static bool ParseCgroups(const Napi::Object& o, CgroupPlan* plan) {
  Napi::Value writes = o.Get("cgroupWrites");
  if (!ParseStrings(o.Get("cgroupDirs"), &plan->dirs) || !ParseStrings(o.Get("cgroupProcs"), &plan->procs) ||
      !ParseStrings(o.Get("cgroupStats"), &plan->stats) || !writes.IsArray())
    return false;
  Napi::Array list = writes.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value e = list.Get(i);
    if (!e.IsObject()) return false;
    Napi::Value path = e.As<Napi::Object>().Get("path"), value = e.As<Napi::Object>().Get("value");
    if (!path.IsString() || !value.IsString()) return false;
    plan->writes.emplace_back(path.As<Napi::String>(), value.As<Napi::String>());
  }
  return true;
}

// egress: null, or {firewall: string, nft: string[], stack: string[]} (argv, absolute paths first).
static bool ParseEgress(const Napi::Value& v, EgressPlan* plan) {
  plan->enabled = false;
  if (v.IsNull() || v.IsUndefined()) return true;
  if (!v.IsObject()) return false;
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value firewall = o.Get("firewall");
  plan->nft.clear();
  plan->stack.clear();
  if (!firewall.IsString() || !ParseStrings(o.Get("nft"), &plan->nft) || !ParseStrings(o.Get("stack"), &plan->stack)) return false;
  if (plan->nft.empty() || plan->stack.empty() || plan->nft[0].empty() || plan->nft[0][0] != '/' || plan->stack[0].empty() || plan->stack[0][0] != '/')
    return false;
  plan->firewall = firewall.As<Napi::String>();
  plan->enabled = true;
  PrepareEgress(plan);
  return true;
}

static bool ParseRlimits(const Napi::Value& v, std::vector<RlimitOp>* out) {
  if (!v.IsArray()) return false;
  Napi::Array list = v.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value e = list.Get(i);
    if (!e.IsObject()) return false;
    Napi::Value resource = e.As<Napi::Object>().Get("resource"), limit = e.As<Napi::Object>().Get("limit");
    if (!resource.IsNumber() || !limit.IsNumber()) return false;
    double l = limit.As<Napi::Number>().DoubleValue();
    bool above = e.As<Napi::Object>().Get("aboveInherited").ToBoolean().Value();
    out->push_back({resource.As<Napi::Number>().Int32Value(), l < 0 ? RLIM_INFINITY : static_cast<uint64_t>(l), above});
  }
  return true;
}

// forkJob({...}): see fork.h. In the zygote returns {pid}; in the job child {child: true}.
static Napi::Value ForkJobJs(const Napi::CallbackInfo& info) {
  const char* usage =
      "forkJob({statusFd, stdoutFd, stderrFd, resultFd, payloadFd, controlFd, hostname, outerUid, outerGid, uid, gid, cloneFlags, "
      "mounts, landlockHandled, landlockScoped, landlock, seccomp, cgroupDirs, cgroupWrites, cgroupProcs, cgroupStats, rlimits, egress, receivedNs})";
  if (info.Length() < 1 || !info[0].IsObject()) return Usage(info.Env(), usage);
  Napi::Object o = info[0].As<Napi::Object>();
  bool ok = true;
  static ForkRequest r;  // reused: its vectors keep their capacity between forks
  r = ForkRequest{};
  r.statusFd = Int(o, "statusFd", &ok);
  r.stdoutFd = Int(o, "stdoutFd", &ok);
  r.stderrFd = Int(o, "stderrFd", &ok);
  r.resultFd = Int(o, "resultFd", &ok);
  r.payloadFd = Int(o, "payloadFd", &ok);
  r.controlFd = Int(o, "controlFd", &ok);
  r.outerUid = static_cast<uid_t>(Int(o, "outerUid", &ok));
  r.outerGid = static_cast<gid_t>(Int(o, "outerGid", &ok));
  r.cloneFlags = static_cast<unsigned long>(Int(o, "cloneFlags", &ok));
  r.uid = static_cast<uid_t>(Int(o, "uid", &ok));
  r.gid = static_cast<gid_t>(Int(o, "gid", &ok));
  if (!ok || !ParseMounts(o.Get("mounts"), &r.mounts) || !ParseLandlock(o, &r) || !o.Get("seccomp").IsTypedArray()) return Usage(info.Env(), usage);
  if (!ParseCgroups(o, &r.cgroups) || !ParseRlimits(o.Get("rlimits"), &r.rlimits) || !ParseEgress(o.Get("egress"), &r.egress)) return Usage(info.Env(), usage);
  Napi::Uint8Array seccomp = o.Get("seccomp").As<Napi::Uint8Array>();
  r.seccomp.assign(seccomp.Data(), seccomp.Data() + seccomp.ByteLength());
  Napi::Value hostname = o.Get("hostname");
  Napi::Value received = o.Get("receivedNs");
  if (!ok || !hostname.IsString() || !received.IsBigInt()) return Usage(info.Env(), usage);
  std::string host = hostname.As<Napi::String>();
  if (host.empty() || host.size() > 64) return Usage(info.Env(), usage);
  bool lossless;
  r.receivedNs = received.As<Napi::BigInt>().Int64Value(&lossless);
  r.hostname = host.c_str();
  napi_get_uv_event_loop(info.Env(), &r.loop);

  ForkOutcome out = ForkJob(r);
  Napi::Object result = Napi::Object::New(info.Env());
  if (out.inChild) {
    result.Set("child", Napi::Boolean::New(info.Env(), true));
    return result;
  }
  result.Set("pid", Napi::Number::New(info.Env(), out.pid));
  if (out.pid < 0) result.Set("errno", Napi::Number::New(info.Env(), out.err));
  return result;
}

// listFds(): [[fd, target], ...] for the zygote's pre-fork fd check.
static Napi::Value ListFds(const Napi::CallbackInfo& info) {
  std::vector<int> fds;
  if (!OpenFds(&fds)) return ErrnoError(info.Env(), "opendir(/proc/self/fd)", errno);
  Napi::Array list = Napi::Array::New(info.Env());
  uint32_t i = 0;
  for (int fd : fds) {
    char path[32], target[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = '\0';
    Napi::Array pair = Napi::Array::New(info.Env(), 2);
    pair.Set(0u, fd);
    pair.Set(1u, target);
    list.Set(i++, pair);
  }
  return list;
}

// exit(code): leave through _exit(), never through Node's shutdown (it joins threads that a
// forked child does not have).
static Napi::Value Exit(const Napi::CallbackInfo& info) {
  int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  AnnounceExit(code & 0xff);
  _exit(code & 0xff);
}

// landlockAbi(): the kernel's highest Landlock ABI, or a negative errno.
static Napi::Value LandlockAbiJs(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), LandlockAbi()); }

static Napi::Value GetPid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), getpid()); }
static Napi::Value GetPpid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), getppid()); }

// heapArena(): the zygote's heap arena (native/arena.c) and its use, or null without one.
static Napi::Value HeapArena(const Napi::CallbackInfo& info) {
  ArenaStats a;
  if (!GetArenaStats(&a)) return info.Env().Null();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("base", Napi::BigInt::New(info.Env(), a.base));
  out.Set("sizeBytes", static_cast<double>(a.size));
  out.Set("takenBytes", static_cast<double>(a.takenBytes));
  out.Set("freeRanges", static_cast<double>(a.freeRanges));
  out.Set("fallbacks", static_cast<double>(a.fallbacks));
  out.Set("lostBytes", static_cast<double>(a.lostBytes));
  out.Set("dontforkDropped", static_cast<double>(a.dontforkDropped));
  return out;
}

// skipForkMarksIfClean(): with the heap arena and no mapping marked MADV_DONTFORK, forks stop
// undoing that mark over the whole address space first. The count of marked mappings, or -errno.
static Napi::Value SkipForkMarksIfClean(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), SkipDoForkMarksIfClean()); }

// collapseHeap(minResidentPercent): bytes of the heap collapsed into huge pages, or -errno.
static Napi::Value CollapseHeapJs(const Napi::CallbackInfo& info) {
  int percent = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 100;
  if (percent < 1 || percent > 100) percent = 100;
  return Napi::Number::New(info.Env(), static_cast<double>(CollapseHeap(percent)));
}

void RegisterZygote(Napi::Env env, Napi::Object exports) {
  exports.Set("heapArena", Napi::Function::New(env, HeapArena));
  exports.Set("skipForkMarksIfClean", Napi::Function::New(env, SkipForkMarksIfClean));
  exports.Set("collapseHeap", Napi::Function::New(env, CollapseHeapJs));
  exports.Set("zygoteInit", Napi::Function::New(env, ZygoteInit));
  exports.Set("installZygoteFilter", Napi::Function::New(env, InstallZygoteFilter));
  exports.Set("serving", Napi::Function::New(env, Serving));
  exports.Set("hasChildren", Napi::Function::New(env, HasChildren));
  exports.Set("recvRequest", Napi::Function::New(env, RecvRequest));
  exports.Set("readable", Napi::Function::New(env, Readable));
  exports.Set("forkJob", Napi::Function::New(env, ForkJobJs));
  exports.Set("listFds", Napi::Function::New(env, ListFds));
  exports.Set("exit", Napi::Function::New(env, Exit));
  exports.Set("landlockAbi", Napi::Function::New(env, LandlockAbiJs));
  exports.Set("getpid", Napi::Function::New(env, GetPid));
  exports.Set("getppid", Napi::Function::New(env, GetPpid));
  Napi::Object rlimit = Napi::Object::New(env);
  rlimit.Set("CORE", static_cast<int>(RLIMIT_CORE));
  rlimit.Set("DATA", static_cast<int>(RLIMIT_DATA));
  rlimit.Set("NPROC", static_cast<int>(RLIMIT_NPROC));
  rlimit.Set("CPU", static_cast<int>(RLIMIT_CPU));
  rlimit.Set("FSIZE", static_cast<int>(RLIMIT_FSIZE));
  exports.Set("RLIMIT", rlimit);
  Napi::Object clone = Napi::Object::New(env);
  clone.Set("NEWUSER", CLONE_NEWUSER);
  clone.Set("NEWPID", CLONE_NEWPID);
  clone.Set("NEWNS", CLONE_NEWNS);
  clone.Set("NEWNET", CLONE_NEWNET);
  clone.Set("NEWUTS", CLONE_NEWUTS);
  clone.Set("NEWIPC", CLONE_NEWIPC);
  clone.Set("NEWCGROUP", CLONE_NEWCGROUP);
  exports.Set("CLONE", clone);
}

}  // namespace ns
