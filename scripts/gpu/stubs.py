# Stub libraries for the GPU kit: every symbol the OpenCV libraries import from
# a library Cozy never uses, defined as a function returning 0 (or a zeroed
# array for data), so that OpenCV loads without those libraries.
import subprocess, os, re
undef=set()
for l in ['core','imgproc','imgcodecs']:
    out=subprocess.run(['nm','-D','--undefined-only',f'/usr/lib/x86_64-linux-gnu/libopencv_{l}.so.406'],capture_output=True,text=True).stdout
    for line in out.split('\n'):
        parts=line.split()
        if len(parts)>=2: undef.add(parts[-1].split('@')[0])
libs={'libgdal.so.32':'/usr/lib/x86_64-linux-gnu/libgdal.so.32','libgdcmMSFF.so.3.0':'/usr/lib/x86_64-linux-gnu/libgdcmMSFF.so.3.0',
      'libgdcmDSED.so.3.0':'/usr/lib/x86_64-linux-gnu/libgdcmDSED.so.3.0',
      'liblapack.so.3':os.path.realpath('/usr/lib/x86_64-linux-gnu/liblapack.so.3'),'libblas.so.3':os.path.realpath('/usr/lib/x86_64-linux-gnu/libblas.so.3'),
      
      'libopenjp2.so.7':'/lib/x86_64-linux-gnu/libopenjp2.so.7','libOpenEXR-3_1.so.30':'/lib/x86_64-linux-gnu/libOpenEXR-3_1.so.30',
      'libImath-3_1.so.29':'/lib/x86_64-linux-gnu/libImath-3_1.so.29','libIex-3_1.so.30':'/lib/x86_64-linux-gnu/libIex-3_1.so.30','libIlmThread-3_1.so.30':'/lib/x86_64-linux-gnu/libIlmThread-3_1.so.30'}
import sys
outdir=sys.argv[1] if len(sys.argv)>1 else '.gpu/lib'
os.makedirs(outdir,exist_ok=True)
for soname,path in libs.items():
    out=subprocess.run(['nm','-D','--defined-only',path],capture_output=True,text=True).stdout
    src=['/* stub: OpenCV links it, Cozy never calls it */']
    i=0
    for line in out.split('\n'):
        parts=line.split()
        if len(parts)<3: continue
        typ,name=parts[1],parts[2].split('@')[0]
        if name not in undef: continue
        i+=1
        if typ in 'TtWwi':
            src.append(f'long s{i}(void) __asm__("{name}"); long s{i}(void) {{ return 0; }}')
        else:
            src.append(f'char s{i}[256] __asm__("{name}");')
    c=f'{outdir}/{soname}.c'
    open(c,'w').write('\n'.join(src)+'\n')
    subprocess.run(['gcc','-shared','-fPIC','-o',f'{outdir}/{soname}',c,f'-Wl,-soname,{soname}'],check=True)
    os.remove(c)
    print(soname,i)
