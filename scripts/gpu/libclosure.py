# The shared libraries Debian's OpenCV core, imgproc and imgcodecs load, less
# the system ones and those stubs.py replaces.
import subprocess, os, re, sys
skip_names = {'libopenjp2.so.7','libOpenEXR-3_1.so.30','libImath-3_1.so.29','libIex-3_1.so.30','libIlmThread-3_1.so.30','liblapack.so.3','libblas.so.3','libgdal.so.32','libgdcmMSFF.so.3.0','libgdcmDSED.so.3.0'}
system = re.compile(r'^(libc\.so|libm\.so|libstdc\+\+|libgcc_s|ld-linux|libpthread|libdl\.so|librt\.so)')
def needed(path):
    out = subprocess.run(['readelf','-d',path],capture_output=True,text=True).stdout
    return re.findall(r'\(NEEDED\)\s+Shared library: \[(.+?)\]', out)
def resolve(name):
    for d in ['/lib/x86_64-linux-gnu','/usr/lib/x86_64-linux-gnu']:
        p=os.path.join(d,name)
        if os.path.exists(p): return p
    raise SystemExit('missing '+name)
todo=['libopencv_core.so.406','libopencv_imgproc.so.406','libopencv_imgcodecs.so.406','libz.so.1']
seen=set()
while todo:
    n=todo.pop()
    if n in seen or n in skip_names or system.match(n): continue
    seen.add(n)
    todo += needed(resolve(n))
for n in sorted(seen): print(resolve(n))
