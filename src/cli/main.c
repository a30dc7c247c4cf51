/*
 * main.c - the genai command: global flags and subcommand dispatch.
 *
 * genai [--version] [--help] COMMAND [ARGS...]
 * Each command parses its own flags (see cmd_<name>.c).
 */
#include "cli.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>

struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
};

static const struct cli_command commands[] = {
    {"system", "show CPUs, memory and GPUs, and what runtime build fits", cmd_system},
    {"serve", "serve the HTTP API (OpenAI-compatible and native)", cmd_serve},
    {"inspect", "show a GGUF model's memory needs and the configuration that fits", cmd_inspect},
    {"pull", "download a model (Hugging Face or URL), resumable and verified", cmd_pull},
    {"list", "list the registered models", cmd_list},
    {"show", "show one model: files, digest, source", cmd_show},
    {"rm", "remove a model and its downloaded files", cmd_rm},
    {"prune", "delete downloaded files no model uses (abandoned pulls)", cmd_prune},
    {"add", "register local model files in place", cmd_add},
    {"settings", "show or change a diffusion model's generation settings", cmd_settings},
    {"image", "make an image with stable-diffusion.cpp", cmd_image},
    {"run", "start a model with the configuration that fits and chat with it", cmd_run},
    {"status", "show whether the daemon runs: address, uptime, memory, runtimes", cmd_status},
    {"stop", "ask the running daemon to shut down and wait until it has", cmd_stop},
    {"logs", "print the running daemon's recent log lines", cmd_logs},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: genai [--version] [--help] COMMAND [ARGS...]\n\n"
                 "genai runs local LLMs (llama.cpp's llama-server) and image models\n"
                 "(stable-diffusion.cpp) on this machine and shares its memory between them.\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'genai COMMAND --help' for the flags of a command.\n"
                 "Environment: GENAI_HOME (all files under one folder), GENAI_LOG_LEVEL\n"
                 "(error, warn, info, debug, trace).\n");
}

int main(int argc, char **argv)
{
    log_init_from_env();
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("genai %s\n", genai_version());
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "genai: unknown command '%s'\nTry 'genai --help'.\n", name);
    return CLI_USAGE;
}
