using System.CommandLine;
using System.Reflection;
using System.Runtime.InteropServices;

namespace CookieProxy.Host.Cli;

/// <summary>The version this binary was built as: the informational version with the git commit (+sha).</summary>
public static class VersionInfo
{
    public static string Informational { get; } =
        typeof(VersionInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(VersionInfo).Assembly.GetName().Version?.ToString()
        ?? "unknown";
}

/// <summary>`cookieproxy version`.</summary>
public static class VersionCommand
{
    public static Command Create()
    {
        var version = new Command("version", "Print the version (with the git commit it was built from) and the runtime.");
        version.SetAction(parsed =>
        {
            TextWriter output = parsed.InvocationConfiguration.Output;
            output.WriteLine($"cookieproxy {VersionInfo.Informational}");
            output.WriteLine($"{RuntimeInformation.FrameworkDescription} {RuntimeInformation.RuntimeIdentifier}");
            return Services.ExitCodes.Ok;
        });
        return version;
    }
}
