/*
 * spawn.h - start one child process the way every genai child is started.
 *
 * The rules (DESIGN.md "Processes", STYLE.md "Processes"): argv and never a
 * shell; stdin from /dev/null; stdout and stderr to pipes the parent reads;
 * every other fd closed in the child; signal mask emptied and dispositions
 * reset to default; on Linux the child gets SIGKILL when the thread that
 * forked it dies (PR_SET_PDEATHSIG), so it cannot outlive a SIGKILLed genai;
 * exec failure reaches the parent synchronously through a close-on-exec pipe,
 * so proc_spawn() either returns a running child or the exec errno.
 *
 * It is used by the synchronous proc_run_capture() (run.h) and by the
 * supervisor on the loop thread (supervisor.h). Reaping is the caller's job.
 */
#ifndef GENAI_PROC_SPAWN_H
#define GENAI_PROC_SPAWN_H

#include "core/error.h"

#include <sys/types.h>

typedef struct proc_spawn_opts {
    const char *const *argv; /* argv[0] is a path or a name looked up in PATH */
    const char *const *envp; /* NULL: inherit the caller's environment */
    const char *cwd;         /* NULL: inherit */
    int new_pgroup;          /* non-zero: the child leads its own process group,
                                so a terminal's Ctrl-C reaches genai, not it */
} proc_spawn_opts;

typedef struct proc_child {
    pid_t pid;
    int out_fd; /* read end of the child's stdout, O_CLOEXEC, blocking */
    int err_fd; /* read end of the child's stderr, O_CLOEXEC, blocking */
} proc_child;

/*
 * Starts the child. On success fills *child; the caller owns both fds (close
 * them) and must reap child->pid with waitpid(). Fails with -ENOENT/-EACCES
 * (and the like) when the program cannot be executed, in which case no child
 * is left behind.
 */
int proc_spawn(const proc_spawn_opts *opts, proc_child *child, genai_error *err);

/*
 * Decodes a waitpid() status into (exited, exit_code, term_signal): exited is
 * 1 for a normal exit (exit_code valid), 0 for death by signal (term_signal).
 */
void proc_decode_status(int status, int *exited, int *exit_code, int *term_signal);

#endif
