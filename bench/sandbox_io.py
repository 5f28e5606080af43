import os, sys, time
d, mode = sys.argv[1], sys.argv[2]
if mode == "rw":
    p = os.path.join(d, "big")
    buf = b"\0" * (1 << 20)
    t = time.perf_counter()
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for _ in range(1024):
        os.write(fd, buf)
    os.fsync(fd)
    os.close(fd)
    w = time.perf_counter() - t
    b = bytearray(1 << 20)
    t = time.perf_counter()
    with open(p, "rb", buffering=0) as f:
        while f.readinto(b):
            pass
    r = time.perf_counter() - t
    os.unlink(p)
    print(w, r)
else:
    os.makedirs(d)
    t = time.perf_counter()
    for i in range(10000):
        with open(f"{d}/f{i}", "w") as f:
            f.write("x" * 512)
    print(time.perf_counter() - t)
