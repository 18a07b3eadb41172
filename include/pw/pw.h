/*
 * proxy-wasm-c: the umbrella header. A Proxy-Wasm host library:
 * modules, VMs, root and stream contexts (pw_vm.h), the host interface a
 * proxy implements (pw_host.h), the engine interface (pw_engine.h), the
 * shared store (pw_store.h), header maps (pw_map.h) and the wasm binary
 * reader (pw_wasm.h).
 */
#ifndef PW_H
#define PW_H

#include <pw/pw_types.h>
#include <pw/pw_map.h>
#include <pw/pw_wasm.h>
#include <pw/pw_engine.h>
#include <pw/pw_store.h>
#include <pw/pw_host.h>
#include <pw/pw_vm.h>

#endif /* PW_H */
