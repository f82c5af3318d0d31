// Preloaded into the policy server: it serves until killed, so it also stops once the process
// that started it is gone by any means (even SIGKILL), when it is handed to another parent.
const parent = process.ppid;
setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
}, 500).unref();
