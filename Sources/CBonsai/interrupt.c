// interrupt.c — Ctrl-C as a flag the generation loop polls, so it stops an answer, not the program.
#include "bonsai_interrupt.h"
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t interrupted = 0;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

void bonsai_interrupt_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;   // no SA_RESTART: a blocking read at the prompt returns, so Ctrl-C there can exit
    sigaction(SIGINT, &sa, NULL);
}

bool bonsai_interrupt_pending(void) { return interrupted != 0; }
void bonsai_interrupt_clear(void) { interrupted = 0; }
