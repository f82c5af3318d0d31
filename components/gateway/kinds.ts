/**
 * The gateway kinds (`gateway.kind`), each described once: how its files are rendered and named,
 * how the binary checks and runs a config, where it reads its TLS files, and what its container
 * needs. The Gateway component, the sandbox and the benchmark all read this table; a kind added
 * to the config schema does not compile until it is described here.
 */
import type { GatewayConfig } from "../config";
import { HAPROXY_CONFIG_FILE, HAPROXY_DEVICE_MAPS, renderHaproxyFiles } from "./haproxy";
import { renderNginxConf } from "./nginx/gateway";
import { currentFile } from "./reload";
import type { GatewaySpec } from "./spec";

export type GatewayKind = GatewayConfig["kind"];

/** Port the gateway listens on inside its container: above 1024, so no NET_BIND_SERVICE. */
export const GATEWAY_CONTAINER_PORT = 8443;
/**
 * nginx: the volume holding every config generation and its TLS material (Docker refuses uploads
 * into a read-only root). The writer mounts it read-write, the gateway read-only.
 */
export const GATEWAY_CONFIG_DIR = "/etc/nginx/zto";
/** tmpfs for nginx's pid file and temp directories (the root filesystem is read-only). */
export const GATEWAY_RUNTIME_DIR = "/tmp";
/** The `nginx` user of the official image; the gateway never runs as root. */
export const GATEWAY_USER = "101:101";
/** haproxy: the config, its device maps and the TLS files live in one generation directory. */
export const HAPROXY_GATEWAY_CONFIG_DIR = "/usr/local/etc/haproxy/zto";
/** The `haproxy` user of the official image (uid/gid 99). */
export const HAPROXY_GATEWAY_USER = "99:99";

/** Where one run of the binary puts what its config does not say. */
export interface RunPlacement {
    /** Log for what the binary says before (or outside) its config's own error log: a path, or `stderr`. */
    readonly errorLog: string;
    /** nginx `-p`: the prefix relative paths resolve against; absent, the binary's compiled-in one. */
    readonly prefix?: string;
    /** haproxy `-p`: the file the master writes its pid to; absent, none is written. */
    readonly pidFile?: string;
}

/** Paths of the server certificate, its key and the device CA. */
export type TlsFiles = { readonly cert: string; readonly key: string; readonly ca: string };

/** What the gateway container of a kind needs besides ports, networks and hardening (which do not differ). */
export interface GatewayContainer {
    /** Volume mount point holding the generations and the `current` link. */
    readonly configDir: string;
    readonly user: string;
    readonly tmpfs?: Record<string, string>;
    readonly healthcheck: string[];
}

export interface GatewayKindDescription {
    /** The binary, which is also the Debian package that installs it. */
    readonly binary: string;
    /** The main config file's name: the file the binary is pointed at. */
    readonly configFile: string;
    /** Names of every file the renderer returns (configFile included), all in one directory. */
    readonly files: readonly string[];
    /** Every rendered file by name. */
    readonly render: (spec: GatewaySpec) => Record<string, string>;
    /** The binary's own config check: exit 0 means the config may be loaded. */
    readonly check: (config: string, at: RunPlacement) => string[];
    /** The binary in the foreground as a master that reloads in place on its reload signal. */
    readonly run: (config: string, at: RunPlacement) => string[];
    /** Where the master's pid is written for a config whose runtime dir is `runtimeDir`. */
    readonly pidFile: (runtimeDir: string) => string;
    /** The binary writes its access log to stdout only (it cannot write log files). */
    readonly accessLogOnStdout: boolean;
    /** The binary loads the server key from the certificate file or from `<cert>.key`, never from a path of its own. */
    readonly keyBesideCert: boolean;
    /** TLS files by path relative to a config generation. */
    readonly tls: TlsFiles;
    /** Prints the binary's version (on stdout or stderr). */
    readonly version: string[];
    readonly container: GatewayContainer;
}

/** nginx `-p` wants a trailing slash. */
const nginxPrefix = (at: RunPlacement) => (at.prefix === undefined ? [] : ["-p", at.prefix.replace(/\/?$/, "/")]);

export const GATEWAY_KINDS: Readonly<Record<GatewayKind, GatewayKindDescription>> = {
    nginx: {
        binary: "nginx",
        configFile: "nginx.conf",
        files: ["nginx.conf"],
        render: (spec) => ({ "nginx.conf": renderNginxConf(spec) }),
        check: (config, at) => ["nginx", "-t", "-q", "-c", config, ...nginxPrefix(at), "-e", at.errorLog],
        // `daemon off` comes from -g, not the config: the sandbox runs the container's very config.
        run: (config, at) => ["nginx", "-c", config, ...nginxPrefix(at), "-e", at.errorLog, "-g", "daemon off;"],
        // The renderer's `pid` directive.
        pidFile: (runtimeDir) => `${runtimeDir}/nginx.pid`,
        accessLogOnStdout: false,
        keyBesideCert: false,
        tls: { cert: "tls/server.crt", key: "tls/server.key", ca: "tls/device-ca.crt" },
        version: ["nginx", "-v"],
        container: {
            configDir: GATEWAY_CONFIG_DIR,
            user: GATEWAY_USER,
            tmpfs: { [GATEWAY_RUNTIME_DIR]: "rw,noexec,nosuid,nodev,size=64m,mode=1777" },
            // Without a client certificate nginx answers 400: the TLS listener is up and verifying.
            healthcheck: ["CMD-SHELL", `curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:${GATEWAY_CONTAINER_PORT}/ | grep -qx 400`],
        },
    },
    haproxy: {
        binary: "haproxy",
        configFile: HAPROXY_CONFIG_FILE,
        files: [HAPROXY_CONFIG_FILE, ...Object.values(HAPROXY_DEVICE_MAPS)],
        render: renderHaproxyFiles,
        // haproxy logs to stderr; it has no error log option.
        check: (config) => ["haproxy", "-c", "-q", "-f", config],
        // Master-worker (-W) in the foreground (-db): SIGUSR2 reloads in place.
        run: (config, at) => ["haproxy", "-W", "-db", "-f", config, ...(at.pidFile === undefined ? [] : ["-p", at.pidFile])],
        pidFile: (runtimeDir) => `${runtimeDir}/haproxy.pid`,
        accessLogOnStdout: true,
        // haproxy 2.6+ reads a certificate's key from `<cert>.key`.
        keyBesideCert: true,
        tls: { cert: "tls/server.pem", key: "tls/server.pem.key", ca: "tls/device-ca.crt" },
        version: ["haproxy", "-v"],
        container: {
            configDir: HAPROXY_GATEWAY_CONFIG_DIR,
            user: HAPROXY_GATEWAY_USER,
            // haproxy writes nothing to disk, so no tmpfs. It refuses the handshake without a client
            // certificate (no HTTP answer to check), so the check is that the TLS listener accepts
            // connections (busybox nc; not logged).
            healthcheck: ["CMD-SHELL", `nc -w 2 127.0.0.1 ${GATEWAY_CONTAINER_PORT} </dev/null`],
        },
    },
};

/** True for a name that is a gateway kind (for command-line arguments). */
export function isGatewayKind(name: string): name is GatewayKind {
    return Object.hasOwn(GATEWAY_KINDS, name);
}

/** The kind's main config file through the container's `current` link. */
export const containerConfigFile = (kind: GatewayKind) => currentFile(GATEWAY_KINDS[kind].container.configDir, GATEWAY_KINDS[kind].configFile);
