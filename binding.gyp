{
  "targets": [
    {
      "target_name": "nodespawner",
      "sources": [
        "native/addon.cc",
        "native/caps.cc",
        "native/cgroups.cc",
        "native/landlock.cc",
        "native/mounts.cc",
        "native/seccomp.cc",
        "native/app.cc",
        "native/child.cc",
        "native/egress.cc",
        "native/fds.cc",
        "native/fork.cc",
        "native/memory.cc",
        "native/userns.cc",
        "native/zygote.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-exceptions"],
      "cflags_cc!": ["-fno-rtti"]
    },
    {
      "target_name": "nodespawner_arena",
      "type": "shared_library",
      "product_prefix": "",
      "product_dir": "<(PRODUCT_DIR)",
      "sources": ["native/arena.c"],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-fvisibility=default"],
      "ldflags": ["-pthread"]
    }
  ]
}
