#!/usr/bin/env python3
"""Writes the seeds of the sequence-driven fuzz targets (protocol_sequence, header_accept).

Their inputs are read by `common::Reader` (little-endian numbers, zeros past the end;
`below(n)` takes one byte when n <= 256, else two); the byte layout of each step is in the
targets' sources. Run from fuzz/seeds: python3 gen_sequences.py
"""
import os
import struct

def u8(v): return struct.pack('<B', v & 0xff)
def u16(v): return struct.pack('<H', v & 0xffff)
def i32(v): return struct.pack('<i', v)
def u64(v): return struct.pack('<Q', v & (2**64 - 1))

def write(target, name, data):
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, name), 'wb') as f:
        f.write(data)

# ---- protocol_sequence -------------------------------------------------------------
CONNECT, DELIVER, ADVANCE, SEND, SEND_ALL, CLOSE, HANDSHAKE = 0, 1, 6, 7, 8, 9, 10
INBOUND, MANUAL, FULL, BLOCK, FEELER, FETCH = range(6)

def world(setup, seed=1): return u8(setup) + u16(0) + u64(seed)
def connect(conn, ip, port=18444, perms=0): return u8(CONNECT) + u8(conn) + u8(ip) + u16(port) + u8(perms)
def handshake(peer, nonce, sendheaders=True): return u8(HANDSHAKE) + u8(peer) + u64(nonce) + u8(1 if sendheaders else 0)
def deliver(peer, msg): return u8(DELIVER) + u8(peer) + msg
def answer(fork=False): return u8(10) + u8(1) + u8(1 if fork else 0) + u8(1)
def send_all(): return u8(SEND_ALL)
def advance_secs(s): return u8(ADVANCE) + u8(1) + u16(s)
def ping(n): return u8(5) + u64(n)
def pong_ours(): return u8(6) + u8(1)
def getaddr(): return u8(7)
def addr_v1(entries):  # entries: (ipv4 tuple, port)
    out = u8(8) + u8(0) + u8(len(entries))
    for ip, port in entries:
        out += u8(0) + u16(0) + u8(2) + u8(2) + bytes(reversed(ip)) + u16(port) + u8(2)
    return out
def addr_v2_tor(n):
    out = u8(9) + u8(0) + u8(n)
    for i in range(n):
        out += u8(0) + u16(10) + u8(2) + u8(4) + bytes([i + 1] * 32) + u16(9050)
    return out
def getheaders_main(heights):
    out = u8(13) + u8(len(heights))
    for h in heights:
        out += u8(1) + u8(0) + u16(h)
    return out + u8(0)
def inv_block_main(h): return u8(14) + u8(0) + u8(1) + u8(0) + u8(1) + u8(0) + u16(h)
def sendaddrv2(): return u8(4)

# Presync: minimum work at height 4,500, one inbound peer serving the main chain.
s = world(1) + connect(INBOUND, 3) + handshake(0, 42) + send_all()
for _ in range(9):
    s += deliver(0, answer()) + send_all()
write('protocol_sequence', 'presync-main', s)

# Plain sync from an outbound peer, then the fork from a second one, serving and announcing.
s = world(0) + connect(FULL, 5) + handshake(0, 7) + send_all()
for _ in range(4):
    s += deliver(0, answer()) + send_all()
s += connect(INBOUND, 6) + handshake(1, 8) + send_all()
s += deliver(1, answer(fork=True)) + deliver(1, answer(fork=True)) + send_all()
s += deliver(1, getheaders_main([100, 50, 0])) + deliver(0, inv_block_main(5999))
s += deliver(0, ping(99)) + advance_secs(150) + send_all() + deliver(0, pong_ours())
s += advance_secs(1300) + send_all()
write('protocol_sequence', 'sync-fork-serve', s)

# Address relay: several peers, addr and addrv2, getaddr, a feeler and an addr-fetch.
s = world(2) + connect(INBOUND, 3) + connect(FULL, 5) + connect(INBOUND, 6) + connect(FETCH, 4)
s += handshake(0, 1) + handshake(1, 2) + handshake(2, 3) + handshake(3, 4)
s += deliver(2, sendaddrv2())
s += deliver(0, addr_v1([((8, 8, 8, 8), 8333), ((9, 9, 9, 9), 8333)]))
s += deliver(1, addr_v2_tor(3)) + deliver(2, getaddr()) + advance_secs(120) + send_all()
s += deliver(3, addr_v1([((5, 5, 5, 5), 8333), ((6, 6, 6, 6), 8333), ((7, 7, 7, 7), 8333)]))
s += connect(FEELER, 5) + send_all() + advance_secs(60) + send_all()
write('protocol_sequence', 'addr-relay', s)

# ---- header_accept -----------------------------------------------------------------
MAIN, SIGNET, EASY, REGTEST = 0, 1, 2, 3
def slice_(start, n): return u8(0) + u16(start) + u16(n)

s = u8(MAIN) + i32(86400 * 64)
for start in range(0, 10235, 2000):
    s += slice_(start, 2000)
s += u8(5) + u16(4000) + u16(100) + u8(1)   # reversed slice
write('header_accept', 'mainnet-all', s)

s = u8(MAIN) + i32(-86400 * 64 * 365) + slice_(0, 2000)  # a clock before the headers
write('header_accept', 'mainnet-early-clock', s)

s = u8(SIGNET) + i32(0) + slice_(0, 2000) + slice_(1990, 100)
write('header_accept', 'signet', s)

def mine(parent, n, step, bits_ok=True):
    out = u8(3) + u8(parent) + u8(n)
    for i in range(n):
        out += u16(step) + u8(2) + u64(i * 7919) + u8(1 if bits_ok else 0x10) + (b'' if bits_ok else i32(0x207fffff))
    return out

s = u8(EASY) + u8(8) + u8(3) + u8(0) + u8(0) + u8(0) + i32(0)
s += mine(0, 39, 60) + mine(20, 30, 1300) + mine(5, 15, 600)
write('header_accept', 'easy-retarget', s)

s = u8(REGTEST) + i32(0) + slice_(0, 2000) + slice_(1000, 1500)
s += u8(2) + u16(100) + u16(10) + u8(0) + u8(3) + u8(2) + i32(-5000) + u8(1)
s += u8(4) + bytes(80) + u8(1) + u8(7)
write('header_accept', 'regtest-mutations', s)
