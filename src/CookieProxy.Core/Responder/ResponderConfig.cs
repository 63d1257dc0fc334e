namespace CookieProxy.Responder;

public sealed class ResponderConfig
{
    /// <summary>MSS we announce over IPv4 (RFC 9293 3.7.1); IPv6 announces 20 less (the larger header).
    /// Clamp it to what the path to the backend side can carry: we re-segment anyway, so it only needs to
    /// fit the client-facing link's MTU.</summary>
    public ushort Mss { get; init; } = 1460;

    /// <summary>The MSS we announce over IPv6: IPv6 headers are 20 bytes longer.</summary>
    public ushort MssV6 => (ushort)(Mss - 20);

    /// <summary>The SYN+ACK's window: unscaled (RFC 7323 2.2), so the buffer capped at 65535.</summary>
    public ushort SynAckWindow => (ushort)Math.Min(65535, ReceiveBufferSize);

    /// <summary>Our receive buffer per flow: the window in the SYN+ACK (unscaled, RFC 7323 2.2) and the
    /// basis of our window-scale shift.</summary>
    public int ReceiveBufferSize { get; init; } = 256 * 1024;

    /// <summary>Verify IPv4 and TCP checksums unless the capture says the kernel already did (or could not).</summary>
    public bool VerifyChecksums { get; init; } = true;

    /// <summary>Answer ACKs with an invalid cookie (and no flow) with RST. Off: under a spoofed ACK flood
    /// that would reflect traffic at the spoofed sources.</summary>
    public bool RstInvalid { get; init; }

    /// <summary>Our window-scale shift: the smallest that lets the 16-bit window cover the buffer (RFC 7323 2.3).</summary>
    public sbyte WindowScale
    {
        get
        {
            sbyte shift = 0;
            while (shift < 14 && (65535L << shift) < ReceiveBufferSize)
            {
                shift++;
            }
            return shift;
        }
    }
}
