#ifndef BONSAI_INTERRUPT_H
#define BONSAI_INTERRUPT_H
#include <stdbool.h>
// SIGINT sets a flag instead of killing the process; loops poll it.
void bonsai_interrupt_install(void);
bool bonsai_interrupt_pending(void);
void bonsai_interrupt_clear(void);
#endif
