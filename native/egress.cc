#include "egress.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ns {

void PrepareEgress(EgressPlan* plan) {
  plan->nftArgv.clear();
  plan->stackArgv.clear();
  for (std::string& s : plan->nft) plan->nftArgv.push_back(&s[0]);
  plan->nftArgv.push_back(nullptr);
  for (std::string& s : plan->stack) plan->stackArgv.push_back(&s[0]);
  plan->stackArgv.push_back(nullptr);
}

// --- helpers: a process that joins the job's user namespace, then execs ----------------------
//
// Started with clone(CLONE_VM | CLONE_VFORK), as posix_spawn does: no copy of the intermediate's
// page tables (it is a fork of the zygote, heap and all), and the intermediate waits until the
// helper has exec'd or failed. Joining the job's user namespace gives the helper every capability
// in it; ambient capabilities carry the few the program needs across execve, since the program
// is not root there. Before the exec the helper shares the intermediate's memory: it only makes
// system calls and writes its report.

struct HelperReport {
  bool failed;
  Failure f;
};

struct Helper {
  const char* step;
  pid_t job;
  uid_t uid;  // the job's ids in its namespace: the helper's too, so it is never root outside
  gid_t gid;
  pid_t parent;  // the intermediate
  bool joinNet;  // the firewall enters the job's network namespace; the stack stays outside
  bool dieWithParent;
  uint64_t ambient;  // capabilities kept across execve, in the job's user namespace
  int fds[6];        // become fds 0..5; -1: /dev/null for 0..2, nothing for 3..5
  char* const* argv;
  HelperReport* report;
};

alignas(16) static char helperStack[64 * 1024];

[[noreturn]] static void HelperFail(Helper* h, const char* syscall, int err, const char* detail = "") {
  Fail(&h->report->f, h->step, syscall, err, detail);
  h->report->failed = true;
  _exit(127);
}

static int OpenNamespace(Helper* h, const char* name) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/%s", static_cast<int>(h->job), name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) HelperFail(h, "open", errno, path);
  return fd;
}

static int RunHelper(void* arg) {
  Helper* h = static_cast<Helper*>(arg);
  // Opened first: once the helper has the job's ids, the job (not yet past its own change of ids)
  // is no longer its to inspect.
  int user = OpenNamespace(h, "user");
  int net = OpenNamespace(h, "net");
  if (setns(user, CLONE_NEWUSER) != 0) HelperFail(h, "setns(CLONE_NEWUSER)", errno);
  close(user);
  if (h->joinNet) {
    if (setns(net, CLONE_NEWNET) != 0) HelperFail(h, "setns(CLONE_NEWNET)", errno);
    close(net);
  } else {
    h->fds[5] = net;  // the stack's handle on the job's network namespace: /proc/self/fd/5
  }
  // Nobody is root in the job's namespace (only the job's ids are mapped), so changing to them
  // keeps the capabilities that joining it gave.
  if (setresgid(h->gid, h->gid, h->gid) != 0) HelperFail(h, "setresgid", errno);
  if (setresuid(h->uid, h->uid, h->uid) != 0) HelperFail(h, "setresuid", errno);
  // The stack opens /dev/net/tun as the job's id outside: say so plainly where it may not.
  if (!h->joinNet && access("/dev/net/tun", R_OK | W_OK) != 0) HelperFail(h, "open", errno, "/dev/net/tun, as the job's uid outside");
  // After the change of ids, which clears it.
  if (h->dieWithParent) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) HelperFail(h, "prctl(PR_SET_PDEATHSIG)", errno);
    if (getppid() != h->parent) HelperFail(h, "getppid", ESRCH, "the intermediate is gone");
  }
  // Every capability in the job's user namespace now: keep only `ambient` across the exec.
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) HelperFail(h, "capget", errno);
  data[0].inheritable = static_cast<uint32_t>(h->ambient);
  data[1].inheritable = static_cast<uint32_t>(h->ambient >> 32);
  if (syscall(SYS_capset, &header, data) != 0) HelperFail(h, "capset", errno);
  for (int cap = 0; cap < 64; cap++) {
    if ((h->ambient >> cap & 1) != 0 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) HelperFail(h, "prctl(PR_CAP_AMBIENT_RAISE)", errno);
  }
  // fds 0..5 from the plan, out of the way of each other first; nothing else stays open.
  constexpr int kFds = sizeof h->fds / sizeof h->fds[0];
  int moved[kFds];
  for (int i = 0; i < kFds; i++) {
    int src = h->fds[i];
    if (src < 0 && i <= 2) src = open("/dev/null", O_RDWR | O_CLOEXEC);
    moved[i] = src < 0 ? -1 : fcntl(src, F_DUPFD_CLOEXEC, kFds);
    if (src >= 0 && moved[i] < 0) HelperFail(h, "fcntl(F_DUPFD_CLOEXEC)", errno);
  }
  for (int i = 0; i < kFds; i++) {
    if (moved[i] >= 0 && dup2(moved[i], i) < 0) HelperFail(h, "dup2", errno);
    if (moved[i] < 0) close(i);
  }
  if (syscall(SYS_close_range, static_cast<unsigned>(kFds), ~0u, 0u) != 0) HelperFail(h, "close_range", errno);
  // Signals as a fresh process has them: Node ignores SIGPIPE, and execve keeps what is ignored.
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  char* const env[] = {nullptr};
  execve(h->argv[0], h->argv, env);
  HelperFail(h, "execve", errno, h->argv[0]);
}

// Starts a helper; returns its pid, or -1 with *f filled.
static pid_t Spawn(Helper* h, Failure* f) {
  HelperReport report = {};
  h->report = &report;
  pid_t pid = clone(RunHelper, helperStack + sizeof helperStack, CLONE_VM | CLONE_VFORK | SIGCHLD, h);
  if (pid < 0) {
    Fail(f, h->step, "clone", errno);
    return -1;
  }
  if (report.failed) {
    *f = report.f;
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return -1;
  }
  return pid;
}

// Reads fd until EOF, keeping the first cap-1 bytes (terminated).
static void ReadAll(int fd, char* buf, size_t cap) {
  size_t used = 0;
  char sink[512];
  for (;;) {
    char* dst = used + 1 < cap ? buf + used : sink;
    size_t room = used + 1 < cap ? cap - 1 - used : sizeof sink;
    ssize_t n = read(fd, dst, room);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (dst == buf + used) used += static_cast<size_t>(n);
  }
  buf[used] = '\0';
}

// The line of a program's output that says what went wrong: nft's "Error:" line, else the last
// line that says it failed (the stacks print their settings to stdout, into the same pipe), else
// the last line.
static const char* ErrorLine(char* text) {
  char* e = strstr(text, "Error:");
  if (e != nullptr) {
    char* end = strchr(e, '\n');
    if (end != nullptr) *end = '\0';
    return e;
  }
  static const char* const kWords[] = {"ail", "rror", "annot", "ouldn't", "an't", "denied", "not permitted"};
  const char* last = "";
  const char* failing = nullptr;
  for (char* line = text; line != nullptr && *line != '\0';) {
    char* next = strchr(line, '\n');
    if (next != nullptr) *next++ = '\0';
    if (*line != '\0') last = line;
    for (const char* w : kWords) {
      if (strstr(line, w) != nullptr) failing = line;
    }
    line = next;
  }
  return failing != nullptr ? failing : last;
}

static int ErrnoOf(const char* message) {
  if (strstr(message, "Operation not permitted") != nullptr) return EPERM;
  if (strstr(message, "No such file or directory") != nullptr) return ENOENT;
  if (strstr(message, "Protocol not supported") != nullptr) return EPROTONOSUPPORT;
  return EINVAL;
}

constexpr uint64_t Cap(int cap) { return uint64_t{1} << cap; }

// nft loads the ruleset in the job's network namespace; the job, which holds no capabilities
// when it runs, cannot change it.
static bool LoadFirewall(const EgressPlan& plan, pid_t job, JobIds ids, Failure* f) {
  int rules = static_cast<int>(syscall(SYS_memfd_create, "nodespawner-firewall", MFD_CLOEXEC));
  if (rules < 0) return Fail(f, "firewall", "memfd_create", errno);
  const char* p = plan.firewall.data();
  size_t left = plan.firewall.size();
  while (left > 0) {
    ssize_t n = write(rules, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(rules);
      return Fail(f, "firewall", "write", errno, "the ruleset");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  lseek(rules, 0, SEEK_SET);
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(rules);
    return Fail(f, "firewall", "pipe2", errno);
  }
  Helper h = {"firewall", job, ids.uid, ids.gid, getpid(), true, false, Cap(CAP_NET_ADMIN), {rules, out[1], out[1], -1, -1, -1}, plan.nftArgv.data(), nullptr};
  pid_t pid = Spawn(&h, f);
  close(rules);
  close(out[1]);
  char text[1024];
  if (pid > 0) ReadAll(out[0], text, sizeof text);
  close(out[0]);
  if (pid < 0) return false;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  const char* line = ErrorLine(text);
  return Fail(f, "firewall", "nft", ErrnoOf(line), line[0] != '\0' ? line : "nft failed without a message");
}

static const char* BaseName(const char* path) {
  const char* slash = strrchr(path, '/');
  return slash != nullptr ? slash + 1 : path;
}

// Starts the stack (pasta or slirp4netns) for the job's network namespace, its fd 5, and waits for
// its ready report: pasta writes its pid to fd 3 (--pid /proc/self/fd/3), slirp4netns writes "1"
// to it (--ready-fd=3). Ends with the intermediate (parent death signal), when fd 4 reaches EOF
// (slirp4netns --exit-fd=4), or when StopEgressFromParent() kills it.
static bool StartStack(const EgressPlan& plan, pid_t job, JobIds ids, int statusFd, EgressStack* out, Failure* f) {
  int ready[2], err[2], exit[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return Fail(f, "network stack", "pipe2", errno);
  if (pipe2(err, O_CLOEXEC) != 0 || pipe2(exit, O_CLOEXEC) != 0) {
    int e = errno;
    close(ready[0]);
    close(ready[1]);
    return Fail(f, "network stack", "pipe2", e);
  }
  // The stack's later messages must never block it: once the set-up is over nobody reads them.
  fcntl(err[1], F_SETFL, O_NONBLOCK);
  // pasta opens its end again by path (/proc/self/fd/3), as the job's id outside.
  if (fchown(ready[1], ids.outerUid, ids.outerGid) != 0 && errno != EPERM) {
    int e = errno;
    for (int fd : {ready[0], ready[1], err[0], err[1], exit[0], exit[1]}) close(fd);
    return Fail(f, "network stack", "fchown", e, "ready pipe");
  }
  Helper h = {"network stack",
              job,
              ids.uid,
              ids.gid,
              getpid(),
              false,
              true,
              Cap(CAP_NET_ADMIN) | Cap(CAP_SYS_ADMIN),
              {-1, err[1], err[1], ready[1], exit[0], -1},
              plan.stackArgv.data(),
              nullptr};
  pid_t pid = Spawn(&h, f);
  close(ready[1]);
  close(err[1]);
  close(exit[0]);
  out->pid = pid;
  out->stderrFd = err[0];
  out->exitFd = exit[1];
  if (pid < 0) {
    close(ready[0]);
    return false;
  }
  bool ok = false;
  for (;;) {
    struct pollfd fds[2] = {{ready[0], POLLIN, 0}, {statusFd, POLLRDHUP, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Fail(f, "network stack", "poll", errno);
      break;
    }
    if ((fds[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
      Fail(f, "network stack", "poll", ECANCELED, "the run was given up before the stack was ready");
      break;
    }
    if (fds[0].revents == 0) continue;
    char byte;
    ssize_t got = read(ready[0], &byte, 1);
    if (got < 0 && errno == EINTR) continue;
    if (got == 1) {
      ok = true;
      break;
    }
    // It closed fd 3 without a word: it failed, and says why on stderr.
    char text[1024];
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    ssize_t m = read(err[0], text, sizeof text - 1);
    text[m > 0 ? m : 0] = '\0';
    const char* line = ErrorLine(text);
    Fail(f, "network stack", BaseName(plan.stackArgv[0]), ErrnoOf(line), line[0] != '\0' ? line : "exited before it was ready");
    break;
  }
  close(ready[0]);
  return ok;
}

bool StartEgressFromParent(const EgressPlan& plan, pid_t job, JobIds ids, int statusFd, EgressStack* out, Failure* f) {
  if (!plan.enabled) return true;
  // The firewall first: no packet leaves the namespace before it is in place.
  RETURN_ON_FAILURE(LoadFirewall(plan, job, ids, f));
  return StartStack(plan, job, ids, statusFd, out, f);
}

void StopEgressFromParent(EgressStack* s) {
  if (s->pid > 0) {
    kill(s->pid, SIGKILL);
    while (waitpid(s->pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  if (s->stderrFd >= 0) close(s->stderrFd);
  if (s->exitFd >= 0) close(s->exitFd);
  *s = EgressStack{};
}

}  // namespace ns
