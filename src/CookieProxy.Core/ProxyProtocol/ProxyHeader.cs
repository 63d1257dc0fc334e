namespace CookieProxy.ProxyProtocol;

// The PROXY protocol, versions 1 and 2 (haproxy doc/proxy-protocol.txt, W. Tarreau, 2010-2020):
// a header the proxy writes to the backend connection before any client byte so the backend learns
// the client's address. Version 1 is one text line, version 2 a binary block with a 12-byte signature.

public enum ProxyProtocolVersion : byte
{
    None = 0,
    V1 = 1,
    V2 = 2,
}
