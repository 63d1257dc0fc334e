using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>A segment the endpoint emitted, with its payload copied out of the ring.</summary>
public sealed record SentSegment(TcpRepr Repr, byte[] Payload)
{
    public SeqNumber Seq => Repr.Seq;
    public SeqNumber Ack => Repr.Ack;
    public TcpFlags Flags => Repr.Flags;
    public ushort Window => Repr.Window;

    public override string ToString()
        => $"seq={Repr.Seq} ack={Repr.Ack} flags={Repr.Flags} win={Repr.Window} len={Payload.Length} sack={Repr.Options.SackCount}";
}

/// <summary>Collects emitted segments (a struct sink, like the host's).</summary>
public struct ListSink : ITcpSegmentSink
{
    public List<SentSegment> Segments;

    public ListSink(List<SentSegment> segments) => Segments = segments;

    public void Emit(in TcpRepr segment, ReadOnlySpan<byte> payloadHead, ReadOnlySpan<byte> payloadTail)
    {
        var payload = new byte[payloadHead.Length + payloadTail.Length];
        payloadHead.CopyTo(payload);
        payloadTail.CopyTo(payload.AsSpan(payloadHead.Length));
        Segments.Add(new SentSegment(segment, payload));
    }
}

/// <summary>
/// smoltcp-style harness: a fake millisecond clock, fixtures that put the endpoint in a given state, a
/// client-side <see cref="Send"/> and <see cref="Recv"/> / <see cref="RecvNothing"/> that assert on what the
/// endpoint emits on Dispatch.
/// </summary>
public abstract class TcpTestBase
{
    protected const ushort LocalPort = 80;
    protected const ushort RemotePort = 40_000;
    protected const int Mss = 1460;

    /// <summary>Our ISS (the cookie) and the client's ISN; the client's sequence space wraps soon.</summary>
    protected static readonly SeqNumber Iss = new(1_000_000);
    protected static readonly SeqNumber Irs = new(0xFFFF_F000);

    /// <summary>NewReno instead of the default CUBIC: tests that check RFC 5681's halving use it.</summary>
    protected static TcpConfig NewRenoConfig => new() { CongestionControl = TcpCongestionControl.NewReno };

    protected long Now = 10_000;
    protected TcpEndpoint Ep = null!;
    /// <summary>Ring buffer pool handed to the endpoints the fixtures create (null: they allocate).</summary>
    protected RingBufferPool? Pool;
    protected readonly List<(TcpState From, TcpState To)> Transitions = new();

    /// <summary>Client sequence number of the next byte it sends; our next byte.</summary>
    protected SeqNumber ClientNext;
    protected SeqNumber OurNext;

    protected static TcpHandshake Handshake(bool sack = false, bool ts = false, sbyte sendScale = -1, sbyte recvScale = -1,
        ushort window = 65535, ushort mss = Mss)
        => new()
        {
            Irs = Irs,
            Iss = Iss,
            SendMss = mss,
            SendWindowScale = sendScale,
            RecvWindowScale = recvScale,
            SackPermitted = sack,
            TimestampsEnabled = ts,
            TsRecent = 5_000,
            LocalTsInitial = 70_000,
            InitialWindow = window,
        };

    protected TcpEndpoint InEstablished(TcpConfig? config = null, TcpHandshake? handshake = null)
    {
        TcpHandshake hs = handshake ?? Handshake();
        Ep = new TcpEndpoint(config ?? new TcpConfig(), in hs, Now, Pool) { LocalPort = LocalPort, RemotePort = RemotePort };
        Ep.StateChanged += (from, to) => Transitions.Add((from, to));
        ClientNext = Irs + 1;
        OurNext = Iss + 1;
        return Ep;
    }

    /// <summary>Backend closed first: our FIN is out, not yet acknowledged.</summary>
    protected TcpEndpoint InFinWait1(TcpConfig? config = null)
    {
        InEstablished(config);
        Ep.CloseSend();
        SentSegment fin = Recv();
        Assert.Equal(TcpFlags.Fin | TcpFlags.Ack, fin.Flags);
        Assert.Equal(OurNext, fin.Seq);
        Assert.Equal(TcpState.FinWait1, Ep.State);
        return Ep;
    }

    protected TcpEndpoint InFinWait2(TcpConfig? config = null)
    {
        InFinWait1(config);
        Send(ClientNext, ack: OurNext + 1);
        OurNext += 1;
        Assert.Equal(TcpState.FinWait2, Ep.State);
        RecvNothing();
        return Ep;
    }

    protected TcpEndpoint InCloseWait(TcpConfig? config = null)
    {
        InEstablished(config);
        Send(ClientNext, flags: TcpFlags.Fin | TcpFlags.Ack);
        ClientNext += 1;
        SentSegment ack = Recv();
        Assert.Equal(ClientNext, ack.Ack);
        Assert.Equal(TcpState.CloseWait, Ep.State);
        return Ep;
    }

    protected TcpEndpoint InLastAck(TcpConfig? config = null)
    {
        InCloseWait(config);
        Ep.CloseSend();
        SentSegment fin = Recv();
        Assert.Equal(TcpFlags.Fin | TcpFlags.Ack, fin.Flags);
        Assert.Equal(TcpState.LastAck, Ep.State);
        return Ep;
    }

    protected TcpEndpoint InTimeWait(TcpConfig? config = null)
    {
        InFinWait2(config);
        Send(ClientNext, flags: TcpFlags.Fin | TcpFlags.Ack);
        ClientNext += 1;
        SentSegment ack = Recv();
        Assert.Equal(ClientNext, ack.Ack);
        Assert.Equal(TcpState.TimeWait, Ep.State);
        return Ep;
    }

    /// <summary>A segment from the client. Defaults: ACK of everything we sent so far, full window.</summary>
    protected void Send(SeqNumber seq, SeqNumber? ack = null, TcpFlags flags = TcpFlags.Ack, byte[]? payload = null,
        ushort window = 65535, uint? tsVal = null, uint tsEcr = 0, params SackBlock[] sack)
    {
        TcpRepr r = default;
        r.SrcPort = RemotePort;
        r.DstPort = LocalPort;
        r.Seq = seq;
        r.Ack = ack ?? OurNext;
        r.Flags = flags;
        r.Window = window;
        r.Options = TcpOptionsRepr.None;
        if (tsVal is uint tv)
        {
            r.Options.HasTimestamp = true;
            r.Options.TsVal = tv;
            r.Options.TsEcr = tsEcr;
        }

        r.Options.SackCount = (byte)sack.Length;
        for (int i = 0; i < sack.Length; i++)
        {
            r.Options.Sack[i] = sack[i];
        }

        Ep.Process(in r, payload ?? [], Now);
    }

    /// <summary>Client sends <paramref name="count"/> in-order bytes (pattern by sequence number).</summary>
    protected byte[] SendData(int count, ushort window = 65535)
    {
        byte[] data = Pattern(ClientNext, count);
        Send(ClientNext, payload: data, window: window);
        ClientNext += count;
        return data;
    }

    protected static byte[] Pattern(SeqNumber start, int count)
    {
        var data = new byte[count];
        for (int i = 0; i < count; i++)
        {
            data[i] = (byte)((start.Value + (uint)i) * 31 >> 3);
        }

        return data;
    }

    protected List<SentSegment> DispatchAll()
    {
        var list = new List<SentSegment>();
        var sink = new ListSink(list);
        Ep.Dispatch(ref sink, Now);
        return list;
    }

    /// <summary>Dispatch and assert exactly one segment came out.</summary>
    protected SentSegment Recv()
    {
        List<SentSegment> list = DispatchAll();
        Assert.True(list.Count == 1, $"expected exactly one segment, got {list.Count}: {string.Join(" | ", list)}");
        return list[0];
    }

    /// <summary>Dispatch and assert one segment with these fields.</summary>
    protected SentSegment Recv(SeqNumber seq, SeqNumber ack, TcpFlags flags = TcpFlags.Ack, int? length = null, ushort? window = null)
    {
        SentSegment s = Recv();
        Assert.Equal(seq, s.Seq);
        Assert.Equal(ack, s.Ack);
        Assert.Equal(flags, s.Flags);
        Assert.Equal(LocalPort, s.Repr.SrcPort);
        Assert.Equal(RemotePort, s.Repr.DstPort);
        if (length is int len)
        {
            Assert.Equal(len, s.Payload.Length);
        }

        if (window is ushort w)
        {
            Assert.Equal(w, s.Window);
        }

        return s;
    }

    protected void RecvNothing()
    {
        List<SentSegment> list = DispatchAll();
        Assert.True(list.Count == 0, $"expected silence, got {list.Count}: {string.Join(" | ", list)}");
    }

    protected void Advance(long ms) => Now += ms;

    /// <summary>
    /// Linux-style quick ACKs answer the first data segments of a connection at once (Linux
    /// tcp_in_quickack_mode); this spends them with one-byte segments, so a test sees the delayed-ACK regime.
    /// </summary>
    protected void SpendQuickAcks()
    {
        for (int i = 0; i < 64; i++)
        {
            SendData(1);
            if (DispatchAll().Count == 0)
            {
                Advance(Ep.NextDeadlineMs - Now); // the delayed ACK of that last byte
                Recv();
                ReadAll();
                return;
            }
        }

        Assert.Fail("quick ACK mode never ended");
    }

    protected byte[] ReadAll()
    {
        Ep.PeekReceived(out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail);
        byte[] data = [.. head, .. tail];
        Ep.ConsumeReceived(data.Length);
        return data;
    }
}
