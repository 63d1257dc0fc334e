using System.Net;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using CookieProxy.Wire;
using static CookieProxy.Platform.XdpMaps;

namespace CookieProxy.Platform;

/// <summary>What the XDP SYN responder has done, summed over CPUs.</summary>
/// <param name="SynAckSent">SYN+ACKs sent with XDP_TX.</param>
/// <param name="SynPassed">SYNs to a protected endpoint left to user space, for any reason.</param>
/// <param name="SynLiveFlow">... of which their 4-tuple had a live flow (RFC 5961 4).</param>
/// <param name="SynOverBudget">SYNs dropped for --syn-rate-per-source.</param>
/// <param name="InternalErrors">Lookups that cannot fail that did, or a committed frame that failed a check.</param>
/// <param name="LiveFlowUpdateFailures">Live-flow map updates from the capture threads that failed.</param>
public readonly record struct XdpSynCounters(long SynAckSent, long SynPassed, long SynLiveFlow, long SynOverBudget,
    long InternalErrors, long LiveFlowUpdateFailures);

/// <summary>
/// SendClientSynAck in the kernel: native/xdp_syn.c (cp_xdp_syn), loaded with libbpf, answering the SYNs of
/// the common shape with the cookie SYN+ACK user space would send, byte for byte. Its maps: the config
/// (tables, layout, our options, two key sets of which one is active), the protected endpoints, the live
/// flows (<see cref="LiveFlows"/>), the per-source SYN budget and the per-CPU counters.
/// <para>Load, then <see cref="Attach"/>; disposing detaches (a BPF link: a crash detaches it as well, and
/// SYNs then reach the user-space responder again).</para>
/// </summary>
[SupportedOSPlatform("linux")]
public sealed unsafe class XdpSynResponder : IDisposable
{
    public const string ProgramName = "cp_xdp_syn";

    private readonly Lock _configLock = new();
    private readonly BpfObject _object;
    private readonly BpfObjectProgram _program;
    private readonly BpfObjectMap _config;
    private readonly BpfObjectMap _counters;
    private readonly int _cpus;
    private readonly LiveFlowMap _liveFlows;
    private cp_syn_config _configValue;
    private SafeFdHandle? _link;

    private readonly BpfObjectMap _endpoints;
    private readonly HashSet<cp_endpoint_key> _endpointKeys;
    private readonly int _endpointCapacity;

    private XdpSynResponder(string interfaceName, BpfObject obj, cp_syn_config config, HashSet<cp_endpoint_key> endpoints, int endpointCapacity)
    {
        InterfaceName = interfaceName;
        _object = obj;
        _program = obj.Program(ProgramName);
        _config = obj.Map("cp_syn_config");
        _counters = obj.Map("cp_syn_counters");
        _endpoints = obj.Map("cp_endpoints");
        _endpointKeys = endpoints;
        _endpointCapacity = endpointCapacity;
        _liveFlows = new LiveFlowMap(obj.Map("cp_live_flows"));
        _configValue = config;
        _cpus = PossibleCpus();
    }

    public string InterfaceName { get; }

    /// <summary>The mode it is attached in; null while detached.</summary>
    public XdpAttachMode? Mode { get; private set; }

    /// <summary>The verifier's statistics when loaded with <c>verifierStats</c> (tests), else "".</summary>
    public string VerifierLog => _program.Log;

    /// <summary>The program's fd (tests attach it the old way, by netlink, to make a stale attachment).</summary>
    internal int ProgramFd => _program.Fd;

    /// <summary>The live-flow map, for the capture threads.</summary>
    public ILiveFlowRegistry LiveFlows => _liveFlows;

    /// <summary>
    /// Opens the embedded object, sizes the maps for <paramref name="settings"/>, loads it (the verifier's
    /// log is in the exception if it refuses) and fills the config with <paramref name="key"/> and
    /// <paramref name="slot"/>. Not attached yet. Failures are <see cref="PacketDeviceException"/>s naming the
    /// interface and the step.
    /// </summary>
    public static XdpSynResponder Load(string interfaceName, XdpSynSettings settings, XdpSynKey key, uint slot, bool verifierStats = false)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        return BpfObject.OpenEmbedded(interfaceName, BpfObjectResources.SynResponder, obj =>
        {
            BpfObjectProgram program = obj.Program(ProgramName);
            if (verifierStats)
            {
                program.SetLogLevel(Interop.Libbpf.BPF_LOG_STATS);
            }
            BpfObjectMap endpoints = obj.Map("cp_endpoints");
            endpoints.SetMaxEntries((uint)settings.EndpointCapacity);
            obj.Map("cp_live_flows").SetMaxEntries((uint)settings.LiveFlowCapacity);
            obj.Map("cp_syn_budget").SetMaxEntries((uint)(settings.Budget?.Buckets ?? 64));
            obj.Load();

            obj.Map("cp_syn_config").RequireLayout(sizeof(uint), sizeof(cp_syn_config));
            obj.Map("cp_syn_counters").RequireLayout(sizeof(uint), sizeof(cp_syn_counters));
            obj.Map("cp_syn_scratch").RequireLayout(sizeof(uint), CpSynOptionsSize);
            endpoints.RequireLayout(sizeof(cp_endpoint_key), sizeof(uint));
            obj.Map("cp_live_flows").RequireLayout(sizeof(cp_flow_key), sizeof(uint));
            obj.Map("cp_syn_budget").RequireLayout(sizeof(cp_prefix_key), sizeof(cp_budget));

            var keys = new HashSet<cp_endpoint_key>();
            foreach (IPEndPoint endpoint in settings.Endpoints)
            {
                uint one = 1;
                cp_endpoint_key k = EndpointKey(endpoint);
                endpoints.Update(k, one);
                keys.Add(k);
            }
            cp_syn_config config = Config(settings, key, slot);
            obj.Map("cp_syn_config").Update(0u, config);
            return new XdpSynResponder(interfaceName, obj, config, keys, settings.EndpointCapacity);
        });
    }

    private static cp_syn_config Config(XdpSynSettings s, XdpSynKey key, uint slot)
    {
        cp_syn_config c = default;
        c.key0 = new cp_syn_key { k0 = key.K0, k1 = key.K1, slot = slot };
        c.key1 = c.key0;
        c.active = 0;
        c.mss_v4 = s.MssV4;
        c.mss_v6 = s.MssV6;
        c.window = s.Window;
        c.window_scale = s.WindowScale;
        for (int i = 0; i < 8; i++)
        {
            c.mss_table[i] = s.MssTable[i];
            c.ws_table[i] = s.WindowScaleTable[i];
        }
        c.mac_bits = (byte)s.Layout.MacBits;
        c.wsi_shift = (byte)s.Layout.WsiShift;
        c.msi_shift = (byte)s.Layout.MsiShift;
        c.sack_shift = (byte)s.Layout.SackShift;
        c.ts_ecn_bit = (byte)s.Layout.TsEcnBit;
        c.ts_ws_none = (byte)s.Layout.TsWsNone;
        if (s.Budget is XdpSynBudget b)
        {
            c.flags |= CP_SYN_F_RATE_LIMIT;
            c.prefix_v4 = (byte)b.PrefixV4;
            c.prefix_v6 = (byte)b.PrefixV6;
            c.syn_interval_ns = (ulong)b.IntervalMicros * 1000;
            c.syn_tolerance_ns = (ulong)b.ToleranceMicros * 1000;
        }
        return c;
    }

    /// <summary>Attaches to the interface (a BPF link). A stale cp_xdp_syn that a netlink attachment left on
    /// the hook is removed first; what was removed is returned (null: nothing).</summary>
    public string? Attach(XdpAttachMode mode)
    {
        if (_link is not null)
        {
            throw new InvalidOperationException("already attached");
        }
        int ifindex = (int)Interop.PacketSocket.if_nametoindex(InterfaceName);
        if (ifindex == 0)
        {
            throw new PacketDeviceException(InterfaceName, $"xdp: no such interface '{InterfaceName}'", Interop.PacketSocket.ENODEV);
        }
        try
        {
            XdpAttachment.RemoveStale(ifindex, ProgramName, out string? removed);
            _link = XdpAttachment.Attach(InterfaceName, ifindex, _program.Fd, mode);
            Mode = mode;
            return removed;
        }
        catch (BpfException e)
        {
            throw new PacketDeviceException(InterfaceName, $"xdp: {e.Message}", e.Errno, e);
        }
    }

    /// <summary>Takes the program off the hook (SYNs go to user space again); it stays loaded and can be
    /// attached again, e.g. in the other mode.</summary>
    public void Detach()
    {
        _link?.Dispose();
        _link = null;
        Mode = null;
    }

    /// <summary>
    /// Signs with a new key from now on (key rotation on reload): written into the inactive key set first,
    /// then made active, so no SYN is ever signed with half a new key. The previous key stays with the
    /// user-space validator, which accepts the cookies signed before.
    /// </summary>
    public void UpdateKey(XdpSynKey key, uint slot) => Publish(key, slot);

    /// <summary>Moves the cookie clock on. Cheap to call often: the map is written only when the slot changes.</summary>
    public void SetSlot(uint slot)
    {
        lock (_configLock)
        {
            cp_syn_key current = (_configValue.active & 1) == 0 ? _configValue.key0 : _configValue.key1;
            if (current.slot == slot)
            {
                return;
            }
            Publish(new XdpSynKey(current.k0, current.k1), slot);
        }
    }

    /// <summary>
    /// The protected endpoints from now on (a reload that adds or removes listeners): the new ones are added
    /// first, then the ones that went are deleted, so an endpoint kept across the change is never missing.
    /// A SYN to an endpoint the program does not (or no longer) hold goes up to user space. One thread.
    /// </summary>
    public void UpdateEndpoints(IReadOnlyList<IPEndPoint> endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var next = new HashSet<cp_endpoint_key>(endpoints.Select(EndpointKey));
        if (next.Count > _endpointCapacity)
        {
            throw new ArgumentException($"{next.Count} protected endpoints, the XDP map holds {_endpointCapacity}.", nameof(endpoints));
        }
        lock (_configLock)
        {
            try
            {
                foreach (cp_endpoint_key key in next)
                {
                    if (!_endpointKeys.Contains(key))
                    {
                        uint one = 1;
                        _endpoints.Update(key, one);
                        _endpointKeys.Add(key);
                    }
                }
                foreach (cp_endpoint_key key in _endpointKeys.Where(k => !next.Contains(k)).ToArray())
                {
                    int errno = _endpoints.TryDelete(key);
                    if (errno != 0 && errno != Interop.Bpf.ENOENT)
                    {
                        throw BpfObject.Failure("bpf_map_delete_elem(cp_endpoints)", errno, "");
                    }
                    _endpointKeys.Remove(key);
                }
            }
            catch (BpfException e)
            {
                throw new PacketDeviceException(InterfaceName, $"xdp: {e.Message}", e.Errno, e);
            }
        }
    }

    /// <summary>While true the program answers nothing and passes every SYN up (counted as passed), e.g. so
    /// that user space can answer and remember SYNs while their rate is low. One write of the config.</summary>
    public void SetPassSyns(bool pass)
    {
        lock (_configLock)
        {
            cp_syn_config next = _configValue;
            next.flags = pass ? next.flags | CP_SYN_F_PASS_SYNS : next.flags & ~CP_SYN_F_PASS_SYNS;
            if (next.flags != _configValue.flags)
            {
                WriteConfig(next);
                _configValue = next;
            }
        }
    }

    private void Publish(XdpSynKey key, uint slot)
    {
        lock (_configLock)
        {
            cp_syn_config next = _configValue;
            var state = new cp_syn_key { k0 = key.K0, k1 = key.K1, slot = slot };
            uint inactive = (next.active & 1) ^ 1;
            if (inactive == 0)
            {
                next.key0 = state;
            }
            else
            {
                next.key1 = state;
            }
            WriteConfig(next);       // the inactive set, while the program still reads the active one
            next.active = inactive;
            WriteConfig(next);       // then the switch (one u32; every other byte is unchanged)
            _configValue = next;
        }
    }

    private void WriteConfig(in cp_syn_config value)
    {
        try
        {
            _config.Update(0u, value);
        }
        catch (BpfException e)
        {
            throw new PacketDeviceException(InterfaceName, $"xdp: {e.Message}", e.Errno, e);
        }
    }

    public XdpSynCounters ReadCounters()
    {
        int stride = sizeof(cp_syn_counters);
        Span<byte> values = stride * _cpus <= 4096 ? stackalloc byte[stride * _cpus] : new byte[stride * _cpus];
        try
        {
            _counters.Lookup(0u, values);
        }
        catch (BpfException e)
        {
            throw new PacketDeviceException(InterfaceName, $"xdp: {e.Message}", e.Errno, e);
        }
        Span<long> sums = stackalloc long[CP_SYN_COUNTERS];
        ReadOnlySpan<ulong> all = MemoryMarshal.Cast<byte, ulong>(values);
        for (int cpu = 0; cpu < _cpus; cpu++)
        {
            for (int c = 0; c < CP_SYN_COUNTERS; c++)
            {
                sums[c] += (long)all[cpu * CP_SYN_COUNTERS + c];
            }
        }
        return new XdpSynCounters(sums[CP_SYN_ANSWERED], sums[CP_SYN_PASSED], sums[CP_SYN_LIVE_FLOW], sums[CP_SYN_OVER_BUDGET],
            sums[CP_SYN_INTERNAL_ERROR], _liveFlows.Failures);
    }

    /// <summary>Runs the program once on <paramref name="frame"/> (BPF_PROG_TEST_RUN): the XDP action and the
    /// frame as it left it. Counters count these runs too.</summary>
    public int TestRun(ReadOnlySpan<byte> frame, out byte[] output)
    {
        var buffer = new byte[frame.Length + 256];
        int action;
        try
        {
            action = _program.TestRun(frame, buffer, out int length);
            output = buffer.AsSpan(0, length).ToArray();
        }
        catch (BpfException e)
        {
            throw new PacketDeviceException(InterfaceName, $"xdp: {e.Message}", e.Errno, e);
        }
        return action;
    }

    /// <summary>/sys/devices/system/cpu/possible ("0-3" or "0,2-5"): per-CPU map values come one per possible CPU.</summary>
    internal static int PossibleCpus()
    {
        string text;
        try
        {
            text = File.ReadAllText("/sys/devices/system/cpu/possible").Trim();
        }
        catch (IOException)
        {
            return Environment.ProcessorCount;
        }
        int highest = 0;
        foreach (string part in text.Split(','))
        {
            string last = part.Contains('-') ? part[(part.IndexOf('-') + 1)..] : part;
            if (int.TryParse(last, out int cpu))
            {
                highest = Math.Max(highest, cpu);
            }
        }
        return highest + 1;
    }

    public void Dispose()
    {
        // The link first: from then on the program is off the hook and SYNs reach user space.
        Detach();
        _liveFlows.Close();
        _object.Dispose();
    }

    /// <summary>The live-flow map. Safe from any thread (each update is one bpf(2) call); allocation-free.</summary>
    private sealed class LiveFlowMap : ILiveFlowRegistry
    {
        private readonly BpfObjectMap _map;
        private long _failures;
        private volatile bool _closed;

        public LiveFlowMap(BpfObjectMap map) => _map = map;

        public long Failures => Volatile.Read(ref _failures);

        /// <summary>The object is going away: later calls do nothing (the host stops its threads first).</summary>
        public void Close() => _closed = true;

        public void Add(in FlowKey flow)
        {
            uint one = 1;
            if (_closed)
            {
                return;
            }
            if (_map.TryUpdate(XdpMaps.FlowKey(flow), one) != 0)
            {
                Interlocked.Increment(ref _failures);
            }
        }

        public void Remove(in FlowKey flow)
        {
            if (_closed)
            {
                return;
            }
            int errno = _map.TryDelete(XdpMaps.FlowKey(flow));
            // ENOENT: the LRU evicted it already, which is what LRU is for.
            if (errno != 0 && errno != Interop.Bpf.ENOENT)
            {
                Interlocked.Increment(ref _failures);
            }
        }
    }
}
