/*
 * spawn.c - fork/exec with the child set up by hand (see spawn.h).
 *
 * Why not posix_spawn or uv_spawn: neither has a hook to run
 * prctl(PR_SET_PDEATHSIG) between fork and exec, which is the only way on
 * Linux to guarantee that a child dies with a SIGKILLed parent.
 *
 * Order of operations, and why:
 *   parent: resolve argv[0] in PATH (no allocation after fork), open
 *           /dev/null and three pipes, all O_CLOEXEC; block every signal so
 *           no handler of ours runs in the child before it resets them; fork.
 *   child:  (only async-signal-safe calls from here on)
 *           1. PR_SET_PDEATHSIG(SIGKILL), then compare getppid() with the
 *              parent's pid: if the parent died before the prctl, exit now.
 *           2. reset every signal disposition to SIG_DFL, then empty the mask.
 *           3. move the fds to 0, 1, 2 (first lift any source that sits in
 *              0..2 out of the way, so dup2 cannot clobber one with another).
 *           4. mark every fd above 2 close-on-exec (close_range); ours already
 *              are, this catches fds a library or the embedding app leaked.
 *           5. execve; on failure write errno to the exec pipe and _exit(127).
 *   parent: restore the signal mask, read the exec pipe: EOF means exec
 *           succeeded (the pipe closed on exec); 4 bytes are the errno, and
 *           the child is reaped before returning the error.
 *
 * PR_SET_PDEATHSIG fires when the *thread* that forked exits, not the
 * process. Callers fork from a thread that outlives the child: the loop
 * thread (which stops its children before it exits) or the caller's thread
 * in proc_run_capture (which reaps before returning).
 */
#include "proc/spawn.h"

#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/prctl.h>
#endif

extern char **environ;

/* Finds name in PATH the way execvp would, but before fork. Writes the path
 * into buf. Returns 0, or -ENOENT / -EACCES. */
static int resolve_program(const char *name, char *buf, size_t bufsz)
{
    if (strchr(name, '/') != NULL) {
        size_t n = strlen(name);
        if (n >= bufsz)
            return -ENAMETOOLONG;
        memcpy(buf, name, n + 1);
        return 0;
    }
    if (name[0] == '\0')
        return -ENOENT;
    const char *path = getenv("PATH");
    if (path == NULL || path[0] == '\0')
        path = "/usr/local/bin:/usr/bin:/bin";
    int saw_eacces = 0;
    const char *p = path;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t dlen = colon != NULL ? (size_t)(colon - p) : strlen(p);
        const char *dir = dlen == 0 ? "." : p;
        if (dlen == 0)
            dlen = 1;
        size_t nlen = strlen(name);
        if (dlen + 1 + nlen < bufsz) {
            memcpy(buf, dir, dlen);
            buf[dlen] = '/';
            memcpy(buf + dlen + 1, name, nlen + 1);
            struct stat st;
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
                if (access(buf, X_OK) == 0)
                    return 0;
                saw_eacces = 1;
            }
        }
        if (colon == NULL)
            break;
        p = colon + 1;
    }
    return saw_eacces ? -EACCES : -ENOENT;
}

/* Child side, between fork and exec. Never returns. */
static void child_exec(const char *path, const proc_spawn_opts *opts, pid_t parent, int fds[3],
                       int exec_wr)
{
    int e;
#ifdef __linux__
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        goto fail;
    if (getppid() != parent)
        _exit(127); /* the parent is already gone: nobody to serve */
#else
    (void)parent;
#endif
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        signal(sig, SIG_DFL); /* fails harmlessly for the reserved RT signals */
    }
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
        goto fail;

    if (opts->new_pgroup && setpgid(0, 0) != 0)
        goto fail;
    if (opts->cwd != NULL && chdir(opts->cwd) != 0)
        goto fail;

    for (int i = 0; i < 3; i++) {
        if (fds[i] < 3 && fds[i] != i) {
            int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (moved < 0)
                goto fail;
            fds[i] = moved;
        }
    }
    for (int i = 0; i < 3; i++) {
        if (fds[i] == i) {
            if (fcntl(i, F_SETFD, 0) != 0) /* keep it across exec */
                goto fail;
        } else if (dup2(fds[i], i) < 0) {
            goto fail;
        }
    }
#if defined(__linux__) && defined(CLOSE_RANGE_CLOEXEC)
    /* Best effort: an old kernel without close_range keeps relying on every
     * fd of ours being O_CLOEXEC from birth. */
    (void)close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
#endif
    execve(path, (char *const *)opts->argv,
           opts->envp != NULL ? (char *const *)opts->envp : environ);
fail:
    e = errno;
    while (write(exec_wr, &e, sizeof(e)) < 0 && errno == EINTR) {
    }
    _exit(127);
}

int proc_spawn(const proc_spawn_opts *opts, proc_child *child, genai_error *err)
{
    if (opts == NULL || opts->argv == NULL || opts->argv[0] == NULL || child == NULL)
        return err_set(err, GENAI_EBAD_ARG, "proc_spawn: no program");

    char path[PATH_MAX];
    int rc = resolve_program(opts->argv[0], path, sizeof(path));
    if (rc < 0)
        return err_errno(err, -rc, "cannot execute '%s'", opts->argv[0]);

    int out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, exec_p[2] = {-1, -1};
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0)
        return err_errno(err, errno, "open /dev/null");
    if (pipe2(out_p, O_CLOEXEC) != 0 || pipe2(err_p, O_CLOEXEC) != 0 ||
        pipe2(exec_p, O_CLOEXEC) != 0) {
        rc = err_errno(err, errno, "pipe2");
        goto close_fds;
    }

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        int fds[3] = {devnull, out_p[1], err_p[1]};
        child_exec(path, opts, parent, fds, exec_p[1]);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        rc = err_errno(err, fork_errno, "fork");
        goto close_fds;
    }

    close(exec_p[1]);
    exec_p[1] = -1;
    int child_errno = 0;
    ssize_t n;
    do {
        n = read(exec_p[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    if (n != 0) {
        /* exec failed (or the pipe read failed, which we treat alike): the
         * child has exited or is about to; reap it so nothing is left. */
        if (n != (ssize_t)sizeof(child_errno) || child_errno <= 0)
            child_errno = n < 0 ? errno : EIO;
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        rc = err_errno(err, child_errno, "cannot execute '%s'", path);
        goto close_fds;
    }

    close(devnull);
    close(out_p[1]);
    close(err_p[1]);
    close(exec_p[0]);
    child->pid = pid;
    child->out_fd = out_p[0];
    child->err_fd = err_p[0];
    LOG_DEBUG("proc", "spawned %s as pid %ld", path, (long)pid);
    return 0;

close_fds:
    close(devnull);
    for (int i = 0; i < 2; i++) {
        if (out_p[i] >= 0)
            close(out_p[i]);
        if (err_p[i] >= 0)
            close(err_p[i]);
        if (exec_p[i] >= 0)
            close(exec_p[i]);
    }
    return rc;
}

void proc_decode_status(int status, int *exited, int *exit_code, int *term_signal)
{
    if (WIFEXITED(status)) {
        *exited = 1;
        *exit_code = WEXITSTATUS(status);
        *term_signal = 0;
    } else {
        *exited = 0;
        *exit_code = -1;
        *term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
}
