// A test-only addon (target nodespawner_probe): one raw system call per attack, for the escape
// tests. JavaScript cannot make most of these calls, so a probe job loads this addon, names an
// attack, and reports what the kernel answered: { ok, errno, result } (and `data` for
// keyctl-read). Like bubblewrap's
// tests/try-syscall.c, each attack is exactly one syscall(2), with arguments chosen so that the
// call would do something if the sandbox let it: the interesting answer is the errno (or the
// SIGSYS that kills the job when seccomp denies the call).
//
// Not part of nodespawner's runtime: only the test suite loads it.
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/sched.h>
#include <linux/io_uring.h>
#include <sched.h>
#include <signal.h>
#include <mqueue.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

#include "napi_util.h"

namespace {

struct Outcome {
  long result;
  int err;
};

Outcome Done(long r) { return {r, r < 0 ? errno : 0}; }

// Arguments of one call: numbers and strings from JavaScript, with defaults.
struct Args {
  const Napi::CallbackInfo& info;
  std::string strings[4];
  char data[256] = {};  // what keyctl-read read

  explicit Args(const Napi::CallbackInfo& i) : info(i) {}

  long Number(size_t i, long fallback) const {
    size_t at = i + 1;  // info[0] is the attack's name
    return at < info.Length() && info[at].IsNumber() ? static_cast<long>(info[at].As<Napi::Number>().Int64Value()) : fallback;
  }

  const char* String(size_t i, const char* fallback) {
    size_t at = i + 1;
    if (at >= info.Length() || !info[at].IsString() || i >= 4) return fallback;
    strings[i] = info[at].As<Napi::String>().Utf8Value();
    return strings[i].c_str();
  }
};

// The outcome of a clone, reaping the child so that the job (PID 1 of its namespace) keeps no zombie.
Outcome DoneAndReaped(long pid) {
  Outcome o = Done(pid);
  if (pid > 0) {
    int status;
    while (waitpid(static_cast<pid_t>(pid), &status, __WALL) < 0 && errno == EINTR) {
    }
  }
  return o;
}

// clone(CLONE_NEWUSER) as a raw system call, the way a process would create a nested user
// namespace without unshare(). The child makes no other call than exit_group.
Outcome CloneNewUser() {
  long pid = syscall(SYS_clone, static_cast<unsigned long>(CLONE_NEWUSER | SIGCHLD), nullptr, nullptr, nullptr, 0);
  if (pid == 0) syscall(SYS_exit_group, 0);
  return DoneAndReaped(pid);
}

// clone3(CLONE_NEWUSER): a seccomp filter cannot read clone3's flags (they are in memory, not in
// a register), so a policy that lets clone3 through at all lets this through.
Outcome Clone3NewUser() {
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = CLONE_NEWUSER;
  args.exit_signal = SIGCHLD;
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) syscall(SYS_exit_group, 0);
  return DoneAndReaped(pid);
}

Outcome Try(const std::string& name, Args& a) {
  // If it succeeds, the job's parent (the intermediate) becomes its tracer: harmless, but the job
  // then stops on every signal. Only worth trying where seccomp should kill the job.
  if (name == "ptrace-traceme") return Done(syscall(SYS_ptrace, PTRACE_TRACEME, 0, nullptr, nullptr));
  if (name == "ptrace-attach") return Done(syscall(SYS_ptrace, PTRACE_ATTACH, a.Number(0, 1), nullptr, nullptr));
  if (name == "mount") return Done(syscall(SYS_mount, "tmpfs", a.String(0, "/tmp"), "tmpfs", 0UL, "size=64k"));
  if (name == "umount2") return Done(syscall(SYS_umount2, a.String(0, "/proc"), MNT_DETACH));
  if (name == "unshare-user") return Done(syscall(SYS_unshare, CLONE_NEWUSER));
  if (name == "clone-user") return CloneNewUser();
  if (name == "clone3-user") return Clone3NewUser();
  // setns(fd, nstype): the fd (a /proc/<pid>/ns/* file opened by the job) comes from JavaScript.
  if (name == "setns") return Done(syscall(SYS_setns, a.Number(0, -1), a.Number(1, 0)));
  if (name == "io_uring_setup") {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    return Done(syscall(SYS_io_uring_setup, 1, &p));
  }
  if (name == "bpf") {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 8;
    attr.max_entries = 1;
    return Done(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
  }
  // The id of the session keyring, without creating one: the job's answer says whose it is.
  if (name == "keyctl") return Done(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
  // Whether the session keyring holds the key `user`:<description>, and its payload: a job must
  // not find the app's keys (a process's session keyring is inherited across fork and clone).
  if (name == "keyctl-search") return Done(syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, "user", a.String(0, "nodespawner-probe"), 0));
  if (name == "keyctl-read") return Done(syscall(SYS_keyctl, KEYCTL_READ, a.Number(0, 0), a.data, sizeof a.data - 1));
  // Not an attack: the test process gives itself a session keyring of its own (named args[0]),
  // so that the keys it adds are not in a keyring other processes of this user share.
  if (name == "keyctl-join-session") return Done(syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, a.String(0, nullptr)));
  if (name == "add_key") {
    const char* payload = a.String(1, "nodespawner probe");
    return Done(syscall(SYS_add_key, "user", a.String(0, "nodespawner-probe"), payload, strlen(payload), KEY_SPEC_SESSION_KEYRING));
  }
  if (name == "perf_event_open") {
    // Counting the CPU clock of this process, kernel included: what perf_event_paranoid >= 2
    // denies to the unprivileged.
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.size = sizeof attr;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.disabled = 1;
    return Done(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0UL));
  }
  if (name == "userfaultfd") return Done(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (name == "process_vm_readv") {
    // Reads one word at an address that is valid in this process: for another process the
    // address is a guess, but the permission check comes first.
    static long word = 42;
    long into = 0;
    struct iovec local = {&into, sizeof into};
    struct iovec remote = {&word, sizeof word};
    return Done(syscall(SYS_process_vm_readv, a.Number(0, 1), &local, 1UL, &remote, 1UL, 0UL));
  }
  if (name == "kill") return Done(syscall(SYS_kill, a.Number(0, 1), a.Number(1, 0)));
  // Default: a netlink socket to nf_tables (AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER), the way to change a firewall.
  if (name == "socket") return Done(syscall(SYS_socket, a.Number(0, 16), a.Number(1, 3), a.Number(2, 12)));
  if (name == "sethostname") {
    const char* host = a.String(0, "escaped");
    return Done(syscall(SYS_sethostname, host, strlen(host)));
  }
  if (name == "setuid") return Done(syscall(SYS_setuid, a.Number(0, 0)));
  if (name == "chroot") return Done(syscall(SYS_chroot, a.String(0, "/tmp")));
  if (name == "pivot_root") return Done(syscall(SYS_pivot_root, a.String(0, "/tmp"), a.String(1, "/tmp")));
  if (name == "open_by_handle_at") {
    // The "shocker" handle: inode 2 (a filesystem's root) by an ext4-style FILEID_INO32_GEN
    // handle, relative to the mount of `mount_fd` (default: the working directory).
    alignas(struct file_handle) unsigned char buf[sizeof(struct file_handle) + 8];
    memset(buf, 0, sizeof buf);
    struct file_handle* handle = reinterpret_cast<struct file_handle*>(buf);
    handle->handle_bytes = 8;
    handle->handle_type = 1;
    buf[offsetof(struct file_handle, f_handle)] = 2;
    return Done(syscall(SYS_open_by_handle_at, a.Number(0, AT_FDCWD), handle, O_RDONLY));
  }
  if (name == "init_module") return Done(syscall(SYS_init_module, nullptr, 0UL, ""));
  // The next three carry arguments that are invalid after the permission check, so that even a
  // process that could make them changes nothing: only the syscall number matters to seccomp.
  if (name == "reboot") return Done(syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, 0, LINUX_REBOOT_CMD_CAD_OFF, nullptr));
  if (name == "kexec_load") return Done(syscall(SYS_kexec_load, 0UL, 0UL, nullptr, 0xffff0000UL));
  if (name == "clock_settime") {
    struct timespec ts = {0, -1};
    return Done(syscall(SYS_clock_settime, CLOCK_REALTIME, &ts));
  }
  // System V and POSIX IPC by key or name: a job must not find the host's objects (its IPC
  // namespace is its own). With IPC_CREAT/O_CREAT in `flags`, the test process makes the host's
  // objects through the same calls.
  if (name == "shmget") return Done(syscall(SYS_shmget, a.Number(0, 0), 4096UL, a.Number(1, 0)));
  if (name == "shmctl-rmid") return Done(syscall(SYS_shmctl, a.Number(0, -1), IPC_RMID, nullptr));
  if (name == "msgget") return Done(syscall(SYS_msgget, a.Number(0, 0), a.Number(1, 0)));
  if (name == "msgctl-rmid") return Done(syscall(SYS_msgctl, a.Number(0, -1), IPC_RMID, nullptr));
  if (name == "mq_open") {
    // The raw call takes the name without glibc's leading slash.
    long fd = syscall(SYS_mq_open, a.String(0, "nodespawner-probe"), a.Number(1, O_RDWR), 0666L, nullptr);
    Outcome o = Done(fd);
    if (fd >= 0) close(static_cast<int>(fd));
    return o;
  }
  if (name == "mq_unlink") return Done(syscall(SYS_mq_unlink, a.String(0, "nodespawner-probe")));
  // A FIFO of the job's making, where another job or the host could open it (writablePaths).
  if (name == "mknod-fifo") return Done(syscall(SYS_mknodat, AT_FDCWD, a.String(0, "/tmp/fifo"), static_cast<long>(S_IFIFO | 0666), 0L));
  // A process the job leaves behind: forks a child that, after `ms` milliseconds, creates the
  // file `path` (a place the test watches) and exits. Returns the child's pid at once.
  if (name == "fork-linger") {
    const char* path = a.String(0, "/tmp/lingered");
    long ms = a.Number(1, 1000);
    long pid = syscall(SYS_clone, static_cast<unsigned long>(SIGCHLD), nullptr, nullptr, nullptr, 0);
    if (pid == 0) {
      struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
      while (syscall(SYS_nanosleep, &t, &t) != 0 && errno == EINTR) {
      }
      int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
      if (fd >= 0) syscall(SYS_close, fd);
      syscall(SYS_exit_group, 0);
    }
    return Done(pid);
  }
  return {-1, -1};
}

const char kAttacks[] =
    "ptrace-traceme, ptrace-attach, mount, umount2, unshare-user, clone-user, clone3-user, setns, io_uring_setup, bpf, keyctl, keyctl-search, keyctl-read, "
    "keyctl-join-session, add_key, perf_event_open, userfaultfd, process_vm_readv, kill, socket, sethostname, setuid, chroot, pivot_root, open_by_handle_at, "
    "init_module, "
    "reboot, kexec_load, clock_settime, shmget, shmctl-rmid, msgget, msgctl-rmid, mq_open, mq_unlink, mknod-fifo, fork-linger";

Napi::Value TrySyscall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return ns::Usage(env, "trySyscall(name: string, ...args: Array<number | string>)");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  Args args(info);
  errno = 0;
  Outcome o = Try(name, args);
  if (o.err == -1) {
    Napi::TypeError::New(env, "Unknown attack `" + name + "`; known attacks are " + kAttacks).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // An attack that got through may have opened an fd (io_uring, bpf map, perf event, userfaultfd,
  // the handle's file): not the job's to keep.
  bool opensFd =
      name == "io_uring_setup" || name == "bpf" || name == "perf_event_open" || name == "userfaultfd" || name == "open_by_handle_at" || name == "socket";
  if (opensFd && o.result >= 0) close(static_cast<int>(o.result));
  Napi::Object out = Napi::Object::New(env);
  out.Set("ok", Napi::Boolean::New(env, o.result >= 0));
  out.Set("errno", Napi::Number::New(env, o.result >= 0 ? 0 : o.err));
  out.Set("result", Napi::Number::New(env, static_cast<double>(o.result)));
  if (name == "keyctl-read" && o.result >= 0) out.Set("data", Napi::String::New(env, args.data, strnlen(args.data, sizeof args.data)));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("trySyscall", Napi::Function::New(env, TrySyscall, "trySyscall"));
  return exports;
}

}  // namespace

NODE_API_MODULE(nodespawner_probe, Init)
