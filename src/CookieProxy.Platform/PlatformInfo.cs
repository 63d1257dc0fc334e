namespace CookieProxy.Platform;

/// <summary>Placeholder so the project builds before the first backend lands.</summary>
internal static class PlatformInfo
{
    public static bool IsLinux => OperatingSystem.IsLinux();
}
