#include "child.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/keyctl.h>
#include <unistd.h>

#include <cstring>

#include "caps.h"
#include "seccomp.h"

namespace ns {

static bool WaitForParent(int syncFd, Failure* f) {
  char go = 0;
  ssize_t n;
  do {
    n = read(syncFd, &go, 1);
  } while (n < 0 && errno == EINTR);
  close(syncFd);
  if (n != 1) return Fail(f, "wait for id maps", "read", n < 0 ? errno : EPIPE, "the parent gave up");
  return true;
}

static bool BecomeJobUser(uid_t uid, gid_t gid, Failure* f) {
  // Neither our old ids nor these are root of the new namespace, so the capabilities we hold in
  // it stay until DropPrivileges(); files we create from here on belong to a mapped id.
  if (setresgid(gid, gid, gid) != 0) return Fail(f, "become the job user", "setresgid", errno);
  if (setresuid(uid, uid, uid) != 0) return Fail(f, "become the job user", "setresuid", errno);
  return true;
}

static bool SetParentDeathSignal(Failure* f) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return Fail(f, "parent death signal", "prctl(PR_SET_PDEATHSIG)", errno);
  return true;
}

static bool NewSession(Failure* f) {
  if (setsid() < 0) return Fail(f, "new session", "setsid", errno);
  return true;
}

// The session keyring is inherited: without this the job would share the app's keys.
static bool NewSessionKeyring(Failure* f) {
  if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, nullptr, 0, 0, 0) < 0) return Fail(f, "session keyring", "keyctl(KEYCTL_JOIN_SESSION_KEYRING)", errno);
  return true;
}

static bool SetHostname(const char* name, Failure* f) {
  if (sethostname(name, strlen(name)) != 0) return Fail(f, "hostname", "sethostname", errno, name);
  return true;
}

static bool SetupStdin(Failure* f) {
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0) return Fail(f, "stdio", "open", errno, "/dev/null");
  if (dup2(null, 0) < 0) return Fail(f, "stdio", "dup2", errno, "stdin");
  close(null);
  return true;
}

static bool SetupStdoutStderr(const ChildPlan& p, Failure* f) {
  if (dup2(p.stdoutFd, 1) < 0) return Fail(f, "stdio", "dup2", errno, "stdout");
  if (dup2(p.stderrFd, 2) < 0) return Fail(f, "stdio", "dup2", errno, "stderr");
  close(p.stdoutFd);
  close(p.stderrFd);
  return true;
}

static bool CloseStatusSocket(const ChildPlan& p, Failure* f) {
  // The control socket was closed by the intermediate before clone(); the status socket is the
  // intermediate's channel to the app and must never be reachable from job code.
  if (close(p.statusFd) != 0) return Fail(f, "close inherited fds", "close", errno, "status socket");
  return true;
}

static bool ReinitEventLoop(uv_loop_t* loop, Failure* f) {
  // libuv re-creates this loop's epoll fd, async eventfd and signal pipe, and re-arms watchers.
  int r = uv_loop_fork(loop);
  if (r != 0) return Fail(f, "event loop", "uv_loop_fork", -r);
  return true;
}

// Whatever is still open and is the very kernel object the zygote holds (the pipes, eventfds and
// epoll fds of Node's other event loops, whose threads the child does not have) is replaced by
// /dev/null: a job must not reach into the zygote, yet a stray write by Node to one of them
// must still succeed rather than abort the child.
static bool NeutralizeZygoteFds(const ChildPlan& p, Failure* f) {
  // Every epoll fd and eventfd shares one anonymous inode, so identity cannot tell the loop's
  // fresh fds from the zygote's: they are named here instead.
  const uv_loop_t* l = p.loop;
  const int fresh[] = {l->backend_fd, l->async_io_watcher.fd, l->async_wfd, l->signal_pipefd[0], l->signal_pipefd[1], l->inotify_fd};
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return Fail(f, "close inherited fds", "open", errno, "/dev/null");
  for (const FdIdentity& z : *p.zygoteFds) {
    if (z.fd <= 2 || z.fd == p.resultFd || z.fd == p.payloadFd || z.fd == null) continue;
    bool ours = false;
    for (int fd : fresh) ours = ours || fd == z.fd;
    if (ours) continue;
    struct stat st;
    if (fstat(z.fd, &st) != 0 || st.st_dev != z.dev || st.st_ino != z.ino) continue;
    if (dup3(null, z.fd, O_CLOEXEC) < 0) return Fail(f, "close inherited fds", "dup3", errno);
  }
  close(null);
  return true;
}

// The job is PID 1 of its namespace, and the kernel ignores a signal that PID 1 sends itself
// unless it has a handler: abort() or process.kill(process.pid, 'SIGTERM') would not end it. For
// the signals whose default is to terminate, a handler writes the signal number to the
// intermediate, which kills the job from outside and reports that signal. Faults (SIGSEGV,
// SIGBUS, SIGILL, SIGFPE) are left to V8 and the kernel: a real fault is forced and kills PID 1.
static int noteFd = -1;

// si_code of a SIGSYS raised by a seccomp trap (SYS_SECCOMP in <asm-generic/siginfo.h>, which
// glibc's headers do not export).
constexpr int kSysSeccomp = 1;

static void OnFatalSignal(int sig, siginfo_t* info, void*) {
  if (sig == SIGSYS && info != nullptr && info->si_code == kSysSeccomp) {
    ExitNote n = {};
    n.kind = kNoteSeccomp;
    n.syscall = info->si_syscall;
    ssize_t ignored = write(noteFd, &n, sizeof n);
    (void)ignored;
  } else {
    unsigned char b = static_cast<unsigned char>(sig);
    ssize_t ignored = write(noteFd, &b, 1);
    (void)ignored;
  }
  for (;;) pause();
}

void AnnounceExit(int code) {
  if (noteFd < 0) return;
  ExitNote n = {};
  n.kind = kNoteExit;
  n.code = static_cast<uint8_t>(code);
  struct rusage ru = {};
  getrusage(RUSAGE_SELF, &ru);
  n.userUs = TimevalUs(ru.ru_utime);
  n.systemUs = TimevalUs(ru.ru_stime);
  n.maxRssKb = ru.ru_maxrss;
  syscall(SYS_close_range, 0u, static_cast<unsigned>(noteFd - 1), 0u);
  syscall(SYS_close_range, static_cast<unsigned>(noteFd + 1), ~0u, 0u);
  ssize_t ignored = write(noteFd, &n, sizeof n);
  (void)ignored;
}

static bool ForwardFatalSignals(int fd, Failure* f) {
  static const int kSignals[] = {SIGABRT, SIGTERM, SIGINT,  SIGHUP, SIGQUIT, SIGUSR2, SIGALRM,  SIGVTALRM,
                                 SIGPROF, SIGXCPU, SIGXFSZ, SIGSYS, SIGTRAP, SIGPWR,  SIGSTKFLT};
  noteFd = fd;
  struct sigaction sa = {};
  sa.sa_sigaction = OnFatalSignal;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  for (int sig : kSignals) {
    if (sigaction(sig, &sa, nullptr) != 0) return Fail(f, "signals", "sigaction", errno);
  }
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, nullptr) != 0) return Fail(f, "signals", "sigprocmask", errno);
  return true;
}

static bool SetResourceLimits(const std::vector<RlimitOp>& limits, uint64_t inheritedDataBytes, Failure* f) {
  for (const RlimitOp& l : limits) {
    uint64_t limit = l.limit;
    if (l.aboveInherited && limit != RLIM_INFINITY) limit = limit > RLIM_INFINITY - inheritedDataBytes ? RLIM_INFINITY : limit + inheritedDataBytes;
    struct rlimit r = {static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
    if (setrlimit(l.resource, &r) != 0) return Fail(f, "resource limits", "setrlimit", errno);
  }
  return true;
}

bool Specialize(const ChildPlan& p, Failure* f) {
  // Before the maps exist we are the overflow uid: nothing that creates files works yet.
  RETURN_ON_FAILURE(SetParentDeathSignal(f));
  RETURN_ON_FAILURE(WaitForParent(p.syncFd, f));
  RETURN_ON_FAILURE(BecomeJobUser(p.uid, p.gid, f));
  // setresuid() clears PR_SET_PDEATHSIG: set it again.
  RETURN_ON_FAILURE(SetParentDeathSignal(f));
  RETURN_ON_FAILURE(NewSession(f));
  RETURN_ON_FAILURE(NewSessionKeyring(f));
  RETURN_ON_FAILURE(ForwardFatalSignals(p.noteFd, f));
  RETURN_ON_FAILURE(SetHostname(p.hostname, f));
  RETURN_ON_FAILURE(SetupStdoutStderr(p, f));
  RETURN_ON_FAILURE(CloseStatusSocket(p, f));
  // The job's own root; the host's is detached.
  RETURN_ON_FAILURE(SetupFilesystem(*p.mounts, f));
  // fds that open /dev/null do it inside the new root; libuv's own before everything shared.
  RETURN_ON_FAILURE(SetupStdin(f));
  RETURN_ON_FAILURE(ReinitEventLoop(p.loop, f));
  RETURN_ON_FAILURE(NeutralizeZygoteFds(p, f));
  RETURN_ON_FAILURE(SetResourceLimits(*p.rlimits, p.inheritedDataBytes, f));
  // Privileges last among the steps that need them; Landlock needs no_new_privs (set here).
  RETURN_ON_FAILURE(DropPrivileges(p.uid, p.gid, f));
  RETURN_ON_FAILURE(RestrictFilesystem(p.landlockHandled, p.landlockScoped, *p.landlock, f));
  // Last: from here on only the syscalls the policy allows.
  RETURN_ON_FAILURE(InstallSeccomp(*p.seccomp, f));
  return true;
}

}  // namespace ns
