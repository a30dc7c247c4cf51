/*
 * cli_driver.c - runs the store's subcommands exactly as `genai` does
 * (same cmd_*.c files), without the rest of the CLI, so the store's
 * process-level tests do not depend on other commands being built.
 * Usage: store_cli COMMAND [ARGS...]
 */
#include "cli.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } cmds[] = {{"pull", cmd_pull},
                {"list", cmd_list},
                {"show", cmd_show},
                {"rm", cmd_rm},
                {"prune", cmd_prune},
                {"add", cmd_add}};
    log_init_from_env();
    if (argc < 2)
        return CLI_USAGE;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "store_cli: unknown command '%s'\n", argv[1]);
    return CLI_USAGE;
}
