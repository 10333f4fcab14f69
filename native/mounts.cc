#include "mounts.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace ns {

// mount_setattr(2) (Linux 5.12), spelled out for C libraries that predate it.
constexpr long kSysMountSetattr = 442;  // the same number on every architecture
constexpr unsigned kAtRecursive = 0x8000;
constexpr uint64_t kAttrRdonly = 0x1, kAttrNosuid = 0x2, kAttrNodev = 0x4;
struct MountAttr {
  uint64_t attrSet, attrClr, propagation, usernsFd;
};

// Staging: the new root is assembled at kNewRoot while the host's root stays reachable at
// kOldRoot, as bubblewrap does; both live on a throwaway tmpfs mounted over /tmp.
static const char kBase[] = "/tmp";
static const char kNewRoot[] = "/newroot";
static const char kOldRoot[] = "/oldroot";

static bool Mkdirs(const char* path, Failure* f, const char* step) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char* p = buf + 1; *p != '\0'; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return Fail(f, step, "mkdir", errno, buf);
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST) return Fail(f, step, "mkdir", errno, buf);
  return true;
}

static bool MakeParent(const char* path, Failure* f) {
  char parent[4096];
  snprintf(parent, sizeof parent, "%s", path);
  char* slash = strrchr(parent, '/');
  if (slash == nullptr || slash == parent) return true;
  *slash = '\0';
  return Mkdirs(parent, f, "mount point");
}

static bool MakeMountPoint(const char* target, bool directory, Failure* f) {
  if (directory) return Mkdirs(target, f, "mount point");
  RETURN_ON_FAILURE(MakeParent(target, f));
  int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0 && errno != EEXIST) return Fail(f, "mount point", "open", errno, target);
  if (fd >= 0) close(fd);
  return true;
}

// A bind mount becomes read-only by a remount, which must keep the flags the kernel locked on
// the source (nodev, nosuid, noexec...) or a user namespace gets EPERM. Only the fallback for
// kernels without mount_setattr (before 5.12): it reaches the top mount, not the ones beneath it.
static bool Remount(const char* target, bool writable, Failure* f) {
  struct statvfs sv;
  if (statvfs(target, &sv) != 0) return Fail(f, "bind flags", "statvfs", errno, target);
  unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (writable ? 0 : MS_RDONLY);
  if (sv.f_flag & ST_RDONLY) flags |= MS_RDONLY;
  if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (sv.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (sv.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  else if (sv.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  else flags |= MS_STRICTATIME;
  if (mount(nullptr, target, nullptr, flags, nullptr) != 0) return Fail(f, "bind flags", "mount(MS_REMOUNT)", errno, target);
  return true;
}

// nosuid and nodev on a bind and on every mount beneath it (MS_REC brought them along), and
// read-only unless the bind is writable: a host device node or a host mount inside a bound tree
// gives the job nothing more than the tree itself.
static bool RestrictBind(const char* target, bool writable, Failure* f) {
  MountAttr attr = {};
  attr.attrSet = kAttrNosuid | kAttrNodev | (writable ? 0 : kAttrRdonly);
  if (syscall(kSysMountSetattr, AT_FDCWD, target, kAtRecursive | AT_SYMLINK_NOFOLLOW, &attr, sizeof attr) == 0) return true;
  // ENOSYS: a kernel before 5.12; EPERM: also what a container's seccomp profile answers for a
  // call it does not know. The remount then says whether the flags can be set at all.
  if (errno != ENOSYS && errno != EPERM) return Fail(f, "bind flags", "mount_setattr(AT_RECURSIVE)", errno, target);
  return Remount(target, writable, f);
}

static bool Bind(const MountOp& op, Failure* f) {
  char source[4096], target[4096];
  snprintf(source, sizeof source, "%s%s", kOldRoot, op.source.c_str());
  snprintf(target, sizeof target, "%s%s", kNewRoot, op.target.c_str());
  struct stat st;
  if (stat(source, &st) != 0) return Fail(f, "bind", "stat", errno, op.source.c_str());
  RETURN_ON_FAILURE(MakeMountPoint(target, S_ISDIR(st.st_mode), f));
  if (mount(source, target, nullptr, MS_BIND | MS_REC, nullptr) != 0) return Fail(f, "bind", "mount(MS_BIND)", errno, op.source.c_str());
  // Device nodes keep the host mount's flags (nodev would make them unusable).
  if (op.kind != MountKind::kDevice) RETURN_ON_FAILURE(RestrictBind(target, op.writable, f));
  return true;
}

// A symlink in the new root (in the job's /tmp: the way to a bind mounted elsewhere).
static bool Symlink(const MountOp& op, Failure* f) {
  char target[4096];
  snprintf(target, sizeof target, "%s%s", kNewRoot, op.target.c_str());
  RETURN_ON_FAILURE(MakeParent(target, f));
  if (symlink(op.source.c_str(), target) != 0) return Fail(f, "symlink", "symlink", errno, op.target.c_str());
  return true;
}

static bool Tmpfs(const MountOp& op, Failure* f) {
  char target[4096], data[64];
  snprintf(target, sizeof target, "%s%s", kNewRoot, op.target.c_str());
  RETURN_ON_FAILURE(Mkdirs(target, f, "tmpfs"));
  snprintf(data, sizeof data, "size=%lld,mode=1777", static_cast<long long>(op.sizeBytes));
  // noexec: a job cannot write a shared object there and map it executable.
  if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, data) != 0) return Fail(f, "tmpfs", "mount(tmpfs)", errno, op.target.c_str());
  return true;
}

static bool Proc(const MountOp& op, Failure* f) {
  char target[4096];
  snprintf(target, sizeof target, "%s%s", kNewRoot, op.target.c_str());
  RETURN_ON_FAILURE(Mkdirs(target, f, "proc"));
  if (mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) return Fail(f, "proc", "mount(proc)", errno, target);
  return true;
}

// A file of the job's own (its /etc/resolv.conf, say): written into the new root, which becomes
// read-only with everything in it. The plan lists these before the binds, so that a bind of the
// same directory covers them rather than them writing into it.
static bool File(const MountOp& op, Failure* f) {
  char target[4096];
  snprintf(target, sizeof target, "%s%s", kNewRoot, op.target.c_str());
  char parent[4096];
  snprintf(parent, sizeof parent, "%s", target);
  char* slash = strrchr(parent, '/');
  if (slash != nullptr && slash != parent) {
    *slash = '\0';
    RETURN_ON_FAILURE(Mkdirs(parent, f, "file"));
  }
  // A new file on the new root's tmpfs, never one reached through a bind.
  int fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0444);
  if (fd < 0) return Fail(f, "file", "open", errno, op.target.c_str());
  const char* p = op.content.data();
  size_t left = op.content.size();
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return Fail(f, "file", "write", e, op.target.c_str());
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  close(fd);
  return true;
}

bool SetupFilesystem(const std::vector<MountOp>& ops, Failure* f) {
  if (ops.empty()) return true;  // the filesystem layer is off: the host's view, as the job user
  // Nothing we mount may propagate back to the host.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return Fail(f, "private mounts", "mount(MS_REC|MS_PRIVATE)", errno, "/");
  // Staging tmpfs over /tmp: its root becomes "/" below, the host's root moves to /oldroot.
  if (mount("tmpfs", kBase, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755") != 0) return Fail(f, "staging root", "mount(tmpfs)", errno, kBase);
  if (chdir(kBase) != 0) return Fail(f, "staging root", "chdir", errno, kBase);
  if (mkdir("newroot", 0755) != 0 || mkdir("oldroot", 0755) != 0) return Fail(f, "staging root", "mkdir", errno, kBase);
  if (mount("tmpfs", "newroot", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") != 0) return Fail(f, "new root", "mount(tmpfs)", errno, "newroot");
  if (syscall(SYS_pivot_root, kBase, "/tmp/oldroot") != 0) return Fail(f, "pivot to staging", "pivot_root", errno, kBase);
  if (chdir("/") != 0) return Fail(f, "pivot to staging", "chdir", errno, "/");

  for (const MountOp& op : ops) {
    switch (op.kind) {
      case MountKind::kBind:
      case MountKind::kDevice:
        RETURN_ON_FAILURE(Bind(op, f));
        break;
      case MountKind::kTmpfs:
        RETURN_ON_FAILURE(Tmpfs(op, f));
        break;
      case MountKind::kProc:
        RETURN_ON_FAILURE(Proc(op, f));
        break;
      case MountKind::kFile:
        RETURN_ON_FAILURE(File(op, f));
        break;
      case MountKind::kSymlink:
        RETURN_ON_FAILURE(Symlink(op, f));
        break;
    }
  }

  // Detach the host's root, then make the new root "/" (pivot_root(".", ".") as bubblewrap does).
  if (umount2(kOldRoot, MNT_DETACH) != 0) return Fail(f, "detach host root", "umount2", errno, kOldRoot);
  if (chdir(kNewRoot) != 0) return Fail(f, "enter new root", "chdir", errno, kNewRoot);
  if (syscall(SYS_pivot_root, ".", ".") != 0) return Fail(f, "enter new root", "pivot_root", errno, kNewRoot);
  if (umount2(".", MNT_DETACH) != 0) return Fail(f, "enter new root", "umount2", errno, "staging root");
  if (chdir("/") != 0) return Fail(f, "enter new root", "chdir", errno, "/");
  if (mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0)
    return Fail(f, "read-only root", "mount(MS_REMOUNT|MS_RDONLY)", errno, "/");
  return true;
}

}  // namespace ns
