/*
 * `ctrexec`: starts a process of an emulated container the way a container runtime does (runc's
 * init, for a container's first process and for `docker exec` / ECS Exec): with the container's
 * user and capability set applied to the process itself, so that what the monitor sees in
 * /proc (uids, CapEff, CapBnd) is what a Fargate container shows.
 *
 *   ctrexec [OPTIONS] -- PROGRAM [ARGS...]
 *
 *   --target=PID      exec mode (`docker exec`): join the PID, mount and network namespaces of
 *                     PID, then its root and working directory; fork (the child is then in the
 *                     PID namespace, with its parent outside it: ppid 0 there); the parent
 *                     waits and exits like the child (its exit code, or the same signal).
 *   --detach=DIR      first-process mode, after `pivot_root . DIR`: lazily unmount DIR, remove
 *                     it and go to `/` (what runc does with the old root).
 *   --uid=N --gid=N   the user and group to run as (both or neither; supplementary groups are
 *                     cleared). Without them the process keeps the caller's ids.
 *   --caps=HEX        the capability set (bit N = capability N), applied as the bounding set;
 *                     the inheritable and ambient sets are cleared. A root process therefore
 *                     gets exactly this set as permitted and effective at its exec (the kernel
 *                     rule for uid 0), and a non-root one an empty set under this bounding set,
 *                     as under runc.
 *
 * Then it execs PROGRAM, searched in the container's PATH. Exit codes of its own: 125 (setup
 * failed, with a message on stderr), 126 (PROGRAM could not be executed), 127 (not found).
 * Built with `cc -static -O2` by the test harness (tests/support/src/programs.rs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

static void die(const char *what) {
    fprintf(stderr, "ctrexec: %s: %s\n", what, strerror(errno));
    exit(125);
}

static void usage(void) {
    fprintf(stderr, "usage: ctrexec [--target=PID | --detach=DIR] [--uid=N --gid=N] "
                    "[--caps=HEX] -- PROGRAM [ARGS...]\n");
    exit(125);
}

static int open_proc(long pid, const char *what, int flags) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/%s", pid, what);
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) {
        die(path);
    }
    return fd;
}

static int last_cap(void) {
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    char text[16] = {0};
    if (fd < 0 || read(fd, text, sizeof text - 1) <= 0) {
        die("reading /proc/sys/kernel/cap_last_cap");
    }
    close(fd);
    return atoi(text);
}

/* Applies the capability set: bounding set, then inheritable and ambient cleared. */
static void apply_caps(unsigned long long caps) {
    int last = last_cap();
    for (int cap = 0; cap <= last && cap < 64; cap++) {
        if (!(caps & (1ULL << cap)) && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1 &&
            prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            die("dropping a capability from the bounding set");
        }
    }
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) {
        die("capget");
    }
    data[0].inheritable = 0;
    data[1].inheritable = 0;
    if (syscall(SYS_capset, &header, data) != 0) {
        die("capset (clearing the inheritable set)");
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        die("clearing the ambient set");
    }
}

/* Exits the way `status` says the child ended: same code, or same signal. */
static void mirror(int status) {
    if (WIFEXITED(status)) {
        exit(WEXITSTATUS(status));
    }
    int sig = WTERMSIG(status);
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    kill(getpid(), sig);
    exit(128 + sig);
}

int main(int argc, char **argv) {
    long target = 0;
    const char *detach = NULL;
    long uid = -1, gid = -1;
    int have_caps = 0;
    unsigned long long caps = 0;
    int i = 1;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        } else if (strncmp(arg, "--target=", 9) == 0) {
            target = strtol(arg + 9, NULL, 10);
        } else if (strncmp(arg, "--detach=", 9) == 0) {
            detach = arg + 9;
        } else if (strncmp(arg, "--uid=", 6) == 0) {
            uid = strtol(arg + 6, NULL, 10);
        } else if (strncmp(arg, "--gid=", 6) == 0) {
            gid = strtol(arg + 6, NULL, 10);
        } else if (strncmp(arg, "--caps=", 7) == 0) {
            caps = strtoull(arg + 7, NULL, 16);
            have_caps = 1;
        } else {
            usage();
        }
    }
    if (i >= argc || (uid < 0) != (gid < 0) || (target > 0 && detach != NULL)) {
        usage();
    }

    if (target > 0) {
        /* Everything is opened before the first setns: /proc stays the host's until then. */
        int net = open_proc(target, "ns/net", O_RDONLY);
        int pid = open_proc(target, "ns/pid", O_RDONLY);
        int mnt = open_proc(target, "ns/mnt", O_RDONLY);
        int root = open_proc(target, "root", O_RDONLY | O_DIRECTORY);
        int cwd = open_proc(target, "cwd", O_RDONLY | O_DIRECTORY);
        if (setns(net, CLONE_NEWNET) != 0) {
            die("joining the network namespace");
        }
        if (setns(pid, CLONE_NEWPID) != 0) {
            die("joining the PID namespace");
        }
        if (setns(mnt, CLONE_NEWNS) != 0) {
            die("joining the mount namespace");
        }
        if (fchdir(root) != 0 || chroot(".") != 0) {
            die("entering the container's root");
        }
        if (fchdir(cwd) != 0) {
            die("entering the working directory");
        }
        close(net);
        close(pid);
        close(mnt);
        close(root);
        close(cwd);
        /* The PID namespace applies to children only. */
        pid_t child = fork();
        if (child < 0) {
            die("fork");
        }
        if (child > 0) {
            int status;
            while (waitpid(child, &status, 0) < 0) {
                if (errno != EINTR) {
                    die("waitpid");
                }
            }
            mirror(status);
        }
    } else if (detach != NULL) {
        if (umount2(detach, MNT_DETACH) != 0) {
            die("unmounting the old root");
        }
        if (rmdir(detach) != 0) {
            die("removing the old root's mount point");
        }
        if (chdir("/") != 0) {
            die("chdir /");
        }
    }

    if (have_caps) {
        apply_caps(caps);
    }
    if (uid >= 0) {
        if (setgroups(0, NULL) != 0) {
            die("setgroups");
        }
        if (setresgid(gid, gid, gid) != 0) {
            die("setresgid");
        }
        if (setresuid(uid, uid, uid) != 0) {
            die("setresuid");
        }
    }
    execvp(argv[i], &argv[i]);
    int code = errno == ENOENT ? 127 : 126;
    fprintf(stderr, "ctrexec: executing %s: %s\n", argv[i], strerror(errno));
    return code;
}
