/** A private CA and a server certificate for 127.0.0.1 signed by it, made with openssl, for TLS tests. */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export interface TestCertificates {
  /** The CA's certificate (PEM), what NODE_EXTRA_CA_CERTS would name. */
  ca: string;
  /** The server's certificate and key (PEM files). */
  cert: string;
  key: string;
}

function opensslIn(dir: string, ...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
}

/** Write a self-signed certificate `NAME.pem` and its key `NAME.key` into `dir` (valid for two days). */
export function makeSelfSigned(dir: string, name: string, commonName: string): { cert: string; key: string } {
  opensslIn(
    dir,
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-subj",
    `/CN=${commonName}`,
  );
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

/** Write `ca.pem`, `server.pem` and `server.key` into `dir` (valid for two days). */
export function makeTestCertificates(dir: string): TestCertificates {
  const openssl = (...args: string[]) => opensslIn(dir, ...args);
  makeSelfSigned(dir, "ca", "ocify test CA");
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1");
  writeFileSync(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1\n");
  openssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  );
  return { ca: join(dir, "ca.pem"), cert: join(dir, "server.pem"), key: join(dir, "server.key") };
}

/** Write `client.cert` and `client.key` into `dir`: a client certificate signed by the CA of makeTestCertificates(caDir). */
export function makeClientCertificate(caDir: string, dir: string): { cert: string; key: string } {
  opensslIn(dir, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=ocify test client");
  writeFileSync(join(dir, "client-ext.cnf"), "extendedKeyUsage=clientAuth\n");
  opensslIn(
    dir,
    "x509",
    "-req",
    "-in",
    "client.csr",
    "-CA",
    join(caDir, "ca.pem"),
    "-CAkey",
    join(caDir, "ca.key"),
    "-CAcreateserial",
    "-out",
    "client.cert",
    "-days",
    "2",
    "-extfile",
    "client-ext.cnf",
  );
  return { cert: join(dir, "client.cert"), key: join(dir, "client.key") };
}
