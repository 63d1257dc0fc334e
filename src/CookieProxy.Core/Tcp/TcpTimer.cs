namespace CookieProxy.Tcp;

/// <summary>What the endpoint's main timer is waiting for. At most one runs at a time (smoltcp's Timer).</summary>
internal enum TcpTimerKind : byte
{
    None,
    /// <summary>RFC 6298: data or FIN outstanding.</summary>
    Retransmit,
    /// <summary>RFC 8985 7.2: the tail loss probe timeout (PTO), ahead of the RTO.</summary>
    LossProbe,
    /// <summary>RFC 9293 3.8.6.1: zero window, data waiting, nothing in flight.</summary>
    Persist,
    /// <summary>RFC 9293 3.10.7.4 TIME-WAIT: the (compact) 2 MSL wait.</summary>
    TimeWait,
}

/// <summary>A timer is data: a kind and an absolute expiry on the caller's millisecond clock.</summary>
internal struct TcpTimer
{
    public TcpTimerKind Kind;
    public long ExpiresAtMs;

    public readonly bool IsRunning => Kind != TcpTimerKind.None;

    public void Set(TcpTimerKind kind, long expiresAtMs)
    {
        Kind = kind;
        ExpiresAtMs = expiresAtMs;
    }

    public void Stop()
    {
        Kind = TcpTimerKind.None;
        ExpiresAtMs = long.MaxValue;
    }
}
