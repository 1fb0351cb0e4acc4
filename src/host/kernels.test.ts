import { describe, expect, it } from 'vitest';
import { UsageError } from '../errors.js';
import { compareVersions, hostMirrors, parseKernelSpec, pickGenericImages, privateSources } from './kernels.js';

describe('--kernel REL', () => {
  it('parses series, ABI names, versions and package names', () => {
    expect(parseKernelSpec('6.1')).toEqual({ kind: 'series', series: '6.1' });
    expect(parseKernelSpec('5.10')).toEqual({ kind: 'series', series: '5.10' });
    expect(parseKernelSpec('6.1.0-56')).toEqual({ kind: 'abi', abi: '6.1.0-56' });
    expect(parseKernelSpec('5.10.0-32-amd64')).toEqual({ kind: 'abi', abi: '5.10.0-32' });
    expect(parseKernelSpec('6.12.117+deb12')).toEqual({ kind: 'abi', abi: '6.12.117+deb12' });
    expect(parseKernelSpec('6.1.158-1')).toEqual({ kind: 'version', version: '6.1.158-1' });
    expect(parseKernelSpec('5.10.223-1')).toEqual({ kind: 'version', version: '5.10.223-1' });
    expect(parseKernelSpec('linux-image-6.1.0-56-amd64')).toEqual({ kind: 'package', name: 'linux-image-6.1.0-56-amd64' });
  });
  it('rejects what no Debian release here carries, in one line naming what works', () => {
    expect(() => parseKernelSpec('4.19')).toThrow(UsageError);
    expect(() => parseKernelSpec('4.19')).toThrow(/5\.10, 6\.1, 6\.12/);
    expect(() => parseKernelSpec('latest')).toThrow(/expected a series/);
    expect(() => parseKernelSpec('6.1; rm -rf /')).toThrow(UsageError);
  });
  it('picks the generic flavour of a series, newest last', () => {
    const search = [
      'linux-image-6.1.0-9-amd64 - Linux 6.1 for 64-bit PCs (signed)',
      'linux-image-6.1.0-57-amd64 - Linux 6.1 for 64-bit PCs (signed)',
      'linux-image-6.1.0-57-amd64-unsigned - Linux 6.1 for 64-bit PCs',
      'linux-image-6.1.0-57-rt-amd64 - Linux 6.1 for 64-bit PCs (signed), PREEMPT_RT',
      'linux-image-6.1.0-57-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)',
      'linux-image-6.1.0-57-amd64-dbg - Debug symbols for linux-image-6.1.0-57-amd64',
      'linux-image-6.12.117+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)',
      'linux-image-6.12.118+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)',
    ].join('\n');
    expect(pickGenericImages(search, '6.1')).toEqual(['linux-image-6.1.0-9-amd64', 'linux-image-6.1.0-57-amd64']);
    expect(pickGenericImages(search, '6.12').at(-1)).toBe('linux-image-6.12.118+deb12-amd64');
  });
  it('orders versions by their numbers', () => {
    expect(compareVersions('6.1.0-9', '6.1.0-56')).toBeLessThan(0);
    expect(compareVersions('6.12.118', '6.12.117')).toBeGreaterThan(0);
    expect(compareVersions('5.10.0-32', '5.10.0-32')).toBe(0);
  });
  it('finds the host mirror in deb822 and one-line sources, and adds bullseye for 5.10', () => {
    const deb822 = 'Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://mirror.example/debian-security/\nSuites: bookworm-security\n';
    expect(hostMirrors(deb822)).toEqual({ debian: 'http://mirror.example/debian', security: 'http://mirror.example/debian-security' });
    expect(hostMirrors('deb [arch=amd64] http://m.example/debian bookworm main\n').debian).toBe('http://m.example/debian');
    expect(hostMirrors('deb https://packages.example.com/apt cloud main\n')).toEqual({ debian: null, security: null });
    const s = privateSources({ debian: 'http://m.example/debian', security: 'http://m.example/debian-security' });
    expect(s).toMatch(/^deb \[signed-by=\S+\] http:\/\/m\.example\/debian bullseye main$/m);
    expect(s).toMatch(/debian-security bookworm-security main$/m);
  });
});
