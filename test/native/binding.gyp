# The test suite's probe addon (native/probe.cc): raw system calls for the escape tests
# (test/60.escape). Built by `npm run build:probe` into test/native/build; never on a user's install.
{
  "targets": [
    {
      "target_name": "nodespawner_probe",
      "sources": ["../../native/probe.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-exceptions"],
      "cflags_cc!": ["-fno-rtti"]
    }
  ]
}
