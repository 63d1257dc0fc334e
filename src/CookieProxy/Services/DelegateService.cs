namespace CookieProxy.Host.Services;

/// <summary>A few lines of glue that need a place in the start/stop order (e.g. the start-up summary line).</summary>
public sealed class DelegateService : IHostService
{
    private readonly Action? _open;
    private readonly Action? _start;
    private readonly Action? _stop;
    private readonly Action? _close;

    public DelegateService(string name, Action? open = null, Action? start = null, Action? stop = null, Action? close = null)
    {
        Name = name;
        _open = open;
        _start = start;
        _stop = stop;
        _close = close;
    }

    public string Name { get; }

    public void Open() => _open?.Invoke();

    public void Start() => _start?.Invoke();

    public void Stop() => _stop?.Invoke();

    public void Close() => _close?.Invoke();
}
