import { describe, expect, it } from 'vitest';
import { cpioNewc, guestScript, initScript, isStaticElf, kernelCmdline, kvmVerdict, moduleLoadOrder, moduleName, qemuArgs, TAG } from './initramfs.js';

// Shaped like a Debian 6.1 modules.dep: 9p needs netfs + 9pnet, virtio_pci its two transports.
const DEP = `kernel/fs/9p/9p.ko: kernel/fs/netfs/netfs.ko kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko
kernel/fs/netfs/netfs.ko: kernel/fs/fscache/fscache.ko
kernel/fs/fscache/fscache.ko:
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko:
kernel/fs/overlayfs/overlay.ko.xz:
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
`;

describe('initramfs modules', () => {
  it('names modules as the kernel does', () => {
    expect(moduleName('kernel/drivers/char/hw_random/virtio-rng.ko')).toBe('virtio_rng');
    expect(moduleName('kernel/fs/overlayfs/overlay.ko.xz')).toBe('overlay');
  });
  it('orders every dependency before the module that needs it, once', () => {
    const { files, missing } = moduleLoadOrder(DEP, '', ['virtio_pci', 'virtio_rng', '9pnet_virtio', '9p', 'overlay']);
    expect(missing).toEqual([]);
    expect(new Set(files).size).toBe(files.length);
    const at = (m: string) => files.findIndex((f) => moduleName(f) === m);
    for (const [mod, dep] of [['9p', 'netfs'], ['netfs', 'fscache'], ['9p', '9pnet'], ['9pnet_virtio', 'virtio_ring'], ['virtio_pci', 'virtio'], ['virtio_rng', 'virtio']])
      expect(at(dep!), `${dep} before ${mod}`).toBeLessThan(at(mod!));
    expect(files).toContain('kernel/fs/overlayfs/overlay.ko.xz');
  });
  it('skips built-in modules and reports the ones that are neither', () => {
    const dep = DEP.replace(/^kernel\/drivers\/virtio\/virtio_pci\.ko:.*\n/m, ''); // built in: not in modules.dep
    const r = moduleLoadOrder(dep, 'kernel/drivers/virtio/virtio_pci.ko\n', ['virtio_pci', 'vsock']);
    expect(r.files).toEqual([]);
    expect(r.missing).toEqual(['vsock']);
  });
});

describe('cpio and ELF', () => {
  it('writes newc records the kernel can unpack (aligned, with a trailer)', () => {
    const b = cpioNewc([{ name: 'init', mode: 0o100755, data: Buffer.from('#!/bin/sh\n') }, { name: 'dev/console', mode: 0o020600, rdev: [5, 1] }]);
    expect(b.length % 4).toBe(0);
    const text = b.toString('latin1');
    expect(text.startsWith('070701')).toBe(true);
    // First header: mode 0o100755 = 0x81ed, filesize 10, namesize 5 ("init\0").
    expect(text.slice(6 + 8, 6 + 16)).toBe('000081ed');
    expect(text.slice(6 + 6 * 8, 6 + 7 * 8)).toBe('0000000a');
    expect(text.slice(6 + 11 * 8, 6 + 12 * 8)).toBe('00000005');
    // The console node carries rdev 5:1.
    const at = text.indexOf('dev/console') - 110;
    expect(text.slice(at + 6 + 9 * 8, at + 6 + 11 * 8)).toBe('0000000500000001');
    expect(text).toContain('TRAILER!!!\0');
  });
  it('tells a static ELF from a dynamic one', () => {
    const elf = (types: number[]) => {
      const b = Buffer.alloc(64 + types.length * 56);
      b.writeUInt32BE(0x7f454c46, 0);
      b[4] = 2;
      b.writeBigUInt64LE(64n, 32);
      b.writeUInt16LE(56, 54);
      b.writeUInt16LE(types.length, 56);
      types.forEach((t, i) => b.writeUInt32LE(t, 64 + i * 56));
      return b;
    };
    expect(isStaticElf(elf([1, 1, 4]))).toBe(true);
    expect(isStaticElf(elf([6, 3, 1]))).toBe(false); // PT_INTERP: needs ld.so
    expect(isStaticElf(Buffer.from('#!/bin/sh\n'))).toBe(false);
  });
});

describe('guest boot', () => {
  const init = initScript({ release: '6.1.0-57-amd64', modulesDir: '/root/.cache/ctprobe/kernels/x/lib/modules/6.1.0-57-amd64', modules: ['kernel/net/9p/9pnet.ko', 'kernel/fs/9p/9p.ko'], captureDir: '/tmp/cap dir', script: '/run/ctprobe-guest/guest.sh' });
  it('mounts the host root read-only under an overlay and switch_roots into it', () => {
    expect(init.startsWith('#!/bin/busybox sh\n')).toBe(true);
    expect(init).toMatch(/insmod \/modules\/\$m/);
    expect(init.indexOf("'9pnet.ko'")).toBeLessThan(init.indexOf("'9p.ko'"));
    expect(init).toMatch(new RegExp(`mount -t 9p -o [^ ]*,ro ${TAG.root} /ro`));
    expect(init).toMatch(/lowerdir=\/ro,upperdir=\/rw\/upper/);
    expect(init).toContain("ln -s '/root/.cache/ctprobe/kernels/x/lib/modules/6.1.0-57-amd64' /newroot/lib/modules/'6.1.0-57-amd64'");
    expect(init).toContain(`${TAG.capture} /newroot'/tmp/cap dir'`);
    expect(init.trim().split('\n').at(-1)).toBe("exec switch_root /newroot /bin/sh '/run/ctprobe-guest/guest.sh'");
  });
  it('has no capture share without --capture', () => {
    expect(initScript({ release: 'r', modulesDir: '/m', modules: [], captureDir: null, script: '/s' })).not.toContain(TAG.capture);
  });
  it('runs the agent, records its status and powers off', () => {
    const s = guestScript({ node: '/usr/bin/node', agent: '/x/dist/lab/engines/guest-agent.js', spec: '/run/ctprobe-guest/spec.json', timeScale: 4 });
    expect(s).toContain('CTPROBE_LAB_TIME_SCALE=4');
    expect(s).toMatch(/'\/usr\/bin\/node' '\/x\/dist\/lab\/engines\/guest-agent.js' '\/run\/ctprobe-guest\/spec.json'/);
    expect(s.indexOf('/status')).toBeLessThan(s.indexOf('sysrq-trigger'));
  });
  it('builds a serial-console command line that does not reboot', () => {
    const c = kernelCmdline();
    expect(c).toMatch(/console=ttyS0/);
    expect(c).toMatch(/panic=-1/);
    expect(c).toMatch(/rdinit=\/init/);
  });
  it('gives qemu the shares, software emulation or KVM, and no reboot', () => {
    const base = { vmlinuz: '/k', initramfs: '/i', cmdline: 'c', runDir: '/run/x', captureDir: null, consoleLog: '/run/x/console.log', memoryMiB: 3072, cpus: 2 };
    const tcg = qemuArgs({ ...base, accel: 'tcg' });
    expect(tcg.join(' ')).toContain('-accel tcg,thread=multi -cpu max');
    expect(tcg).toContain('-no-reboot');
    expect(tcg).toContain(`local,path=/,mount_tag=${TAG.root},security_model=none,multidevs=remap,readonly=on`);
    expect(tcg).toContain(`local,path=/run/x,mount_tag=${TAG.run},security_model=none,multidevs=remap`);
    expect(tcg.join(' ')).not.toContain(TAG.capture);
    expect(qemuArgs({ ...base, accel: 'kvm', captureDir: '/c' }).join(' ')).toMatch(/-accel kvm -cpu host.*mount_tag=ctpcap/);
  });
  it('uses KVM only where it can boot a stock kernel', () => {
    expect(kvmVerdict({ devKvmRw: true, cpuFlags: 'fpu vmx sse', kvmPvm: false }).accel).toBe('kvm');
    expect(kvmVerdict({ devKvmRw: true, cpuFlags: 'fpu vmx sse', kvmPvm: true })).toMatchObject({ accel: 'tcg', why: expect.stringMatching(/kvm_pvm/) });
    expect(kvmVerdict({ devKvmRw: true, cpuFlags: 'fpu hypervisor', kvmPvm: false }).accel).toBe('tcg');
    expect(kvmVerdict({ devKvmRw: false, cpuFlags: 'svm', kvmPvm: false }).accel).toBe('tcg');
  });
});
