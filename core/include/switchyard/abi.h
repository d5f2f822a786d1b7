/* SPDX-License-Identifier: MIT
 *
 * The C-shaped part of the Switchyard plugin ABI.
 *
 * Every plugin exports exactly three symbols (see docs/plugin-abi.md):
 *   - switchyard_plugin_info    : a constant `sy_plugin_info` record (data, no pointers)
 *   - switchyard_plugin_schema  : returns its configuration schema
 *   - switchyard_plugin_create  : creates the plugin's factory from its configuration
 *                                 (C++ object, same toolchain only); the factory makes
 *                                 the instances (ABI 2.0)
 *
 * The info record holds only fixed-size arrays and integers, so the host reads it
 * straight from the ELF file and checks it *before* the library is mapped: no plugin
 * code (not even a static constructor) runs for a plugin that fails the check.
 */
#ifndef SWITCHYARD_ABI_H
#define SWITCHYARD_ABI_H

#include <stdint.h>

/* Bump MAJOR on any incompatible change (host requires equality).
 * Bump MINOR on additive changes (host accepts plugin minor <= its own). */
#define SWITCHYARD_ABI_MAJOR 2
#define SWITCHYARD_ABI_MINOR 1

#define SWITCHYARD_INFO_MAGIC 0x53594142u /* "SYAB" */

#define SY_STR2(x) #x
#define SY_STR(x) SY_STR2(x)

/* Everything that must match between host and plugin for C++ objects to cross the
 * boundary: compiler and version, standard library and its ABI switch, -std, ABI major. */
#ifndef SWITCHYARD_BUILD_FINGERPRINT
#if defined(__clang__)
#define SY_FP_COMPILER "clang-" __clang_version__
#elif defined(__GNUC__)
#define SY_FP_COMPILER "gcc-" SY_STR(__GNUC__) "." SY_STR(__GNUC_MINOR__)
#else
#define SY_FP_COMPILER "unknown"
#endif
#if defined(__GLIBCXX__)
#define SY_FP_STDLIB ";libstdc++-" SY_STR(_GLIBCXX_RELEASE) ";cxx11abi=" SY_STR(_GLIBCXX_USE_CXX11_ABI)
#elif defined(_LIBCPP_VERSION)
#define SY_FP_STDLIB ";libc++-" SY_STR(_LIBCPP_VERSION)
#else
#define SY_FP_STDLIB ";stdlib-unknown"
#endif
#define SWITCHYARD_BUILD_FINGERPRINT                                                        \
  SY_FP_COMPILER SY_FP_STDLIB ";std=" SY_STR(__cplusplus) ";abi=" SY_STR(SWITCHYARD_ABI_MAJOR)
#endif

enum sy_plugin_kind {
  SY_KIND_SOURCE = 1,
  SY_KIND_SINK = 2,
  SY_KIND_FILTER = 3,
};

enum sy_plugin_flags {
  /* The plugin can acknowledge (source: settles deliveries upstream; sink: reports
   * delivery only once the next hop confirmed). ZeroMQ plugins leave it unset. */
  SY_FLAG_CAN_ACK = 1u << 0,
  /* Filters only (ABI 1.1): an instance keeps no state that must see the whole stream, so
   * the core may create one instance per filter worker and run the instances in parallel,
   * each on its own share of the messages (the core keeps the order of the stream). A
   * filter without it always runs on one thread. */
  SY_FLAG_PARALLEL = 1u << 1,
};

#define SY_NAME_MAX 64
#define SY_VERSION_MAX 32
#define SY_DESCRIPTION_MAX 256
#define SY_FINGERPRINT_MAX 128

typedef struct sy_plugin_info {
  uint32_t magic;       /* SWITCHYARD_INFO_MAGIC */
  uint32_t struct_size; /* sizeof(sy_plugin_info) at build time; fields only ever appended */
  uint16_t abi_major;
  uint16_t abi_minor;
  uint32_t kind;  /* sy_plugin_kind */
  uint32_t flags; /* sy_plugin_flags */
  uint32_t reserved;
  char name[SY_NAME_MAX];               /* "zmq-sub"; unique across all loaded plugins */
  char version[SY_VERSION_MAX];         /* the plugin's own version */
  char description[SY_DESCRIPTION_MAX]; /* one line */
  char build_fingerprint[SY_FINGERPRINT_MAX];
} sy_plugin_info;

/* Types a configuration key can have; the core checks them before the plugin sees them. */
enum sy_config_type {
  SY_CFG_STRING = 1,
  SY_CFG_INT = 2,
  SY_CFG_FLOAT = 3, /* integers are accepted too */
  SY_CFG_BOOL = 4,
  SY_CFG_STRING_LIST = 5, /* a sequence of scalars; a single scalar is accepted as a list of one */
  SY_CFG_MAP = 6,         /* any mapping; the plugin checks its content */
  SY_CFG_LIST = 7,        /* any sequence; the plugin checks its content */
  SY_CFG_ANY = 8,
};

typedef struct sy_config_key {
  const char *name;          /* NULL terminates the schema array */
  uint32_t type;             /* sy_config_type */
  uint32_t required;         /* non-zero: must be present (default_json then unused) */
  const char *default_json;  /* JSON text of the default, or NULL for "no default" */
  const char *description;   /* one or two sentences, shown by `switchyard plugins NAME` */
  uint32_t secret;           /* non-zero: never logged or printed */
  /* Constraints the core checks before the plugin sees the value (`switchyard check`
   * reports a breach at the value's file:line:column; `switchyard plugins NAME` lists
   * them). Appended in ABI 2.0: a schema written without them (aggregate initialisation
   * with the trailing fields left out) has none. */
  const char *enum_values;   /* "a|b|c": the allowed values of a SY_CFG_STRING key, or of
                                each item of a SY_CFG_STRING_LIST key; NULL = any */
  uint32_t bounds;           /* SY_BOUND_MIN | SY_BOUND_MAX: which of min and max apply */
  double min;                /* SY_CFG_INT, SY_CFG_FLOAT: smallest allowed value (inclusive) */
  double max;                /* SY_CFG_INT, SY_CFG_FLOAT: largest allowed value (inclusive) */
} sy_config_key;

/* sy_config_key.bounds */
enum sy_config_bounds {
  SY_BOUND_MIN = 1u << 0,
  SY_BOUND_MAX = 1u << 1,
};

#define SY_SYMBOL_INFO "switchyard_plugin_info"
#define SY_SYMBOL_SCHEMA "switchyard_plugin_schema"
#define SY_SYMBOL_CREATE "switchyard_plugin_create"

#endif /* SWITCHYARD_ABI_H */
