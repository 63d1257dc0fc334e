using System.CommandLine;
using System.Globalization;
using System.Xml;
using System.Xml.Linq;
using CookieProxy.Host.Cli;
using CookieProxy.Tests.Host;

namespace CookieProxy.Tests.Packaging;

/// <summary>
/// packaging/com.cookieproxy.plist, the launchd job. There is no launchd or plutil on the Linux build machine, so
/// this holds the file to what launchd.plist(5) documents: an XML property list (the Apple DTD's dict of key/value
/// pairs), only keys launchd knows with the value types it expects, a Label that matches the file name, and a
/// command line our own parser accepts.
/// </summary>
public sealed class LaunchdPlistTests
{
    private static readonly string s_path = Path.Combine(ConfigFileTests.RepoRoot(), "packaging", "com.cookieproxy.plist");

    /// <summary>The launchd.plist(5) keys the job uses, with the plist element each must be.</summary>
    private static readonly Dictionary<string, string[]> s_knownKeys = new(StringComparer.Ordinal)
    {
        ["Label"] = ["string"],
        ["ProgramArguments"] = ["array"],
        ["RunAtLoad"] = ["true", "false"],
        ["KeepAlive"] = ["true", "false", "dict"],
        ["ThrottleInterval"] = ["integer"],
        ["ExitTimeOut"] = ["integer"],
        ["ProcessType"] = ["string"],
        ["SoftResourceLimits"] = ["dict"],
        ["HardResourceLimits"] = ["dict"],
        ["StandardOutPath"] = ["string"],
        ["StandardErrorPath"] = ["string"],
        ["WorkingDirectory"] = ["string"],
        ["UserName"] = ["string"],
        ["EnvironmentVariables"] = ["dict"],
    };

    private static Dictionary<string, XElement> TopLevel()
    {
        var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Parse, XmlResolver = null /* keep the DOCTYPE, fetch nothing */ };
        using XmlReader reader = XmlReader.Create(s_path, settings);
        XDocument doc = XDocument.Load(reader);
        Assert.Equal("plist", doc.DocumentType?.Name);
        Assert.Equal("-//Apple//DTD PLIST 1.0//EN", doc.DocumentType?.PublicId);
        XElement root = doc.Root!;
        Assert.Equal("plist", root.Name.LocalName);
        Assert.Equal("1.0", (string?)root.Attribute("version"));
        XElement dict = Assert.Single(root.Elements());
        Assert.Equal("dict", dict.Name.LocalName);
        return Pairs(dict);
    }

    /// <summary>A plist dict: key, value, key, value ... (the DTD's (key, %plistObject;)*).</summary>
    private static Dictionary<string, XElement> Pairs(XElement dict)
    {
        var pairs = new Dictionary<string, XElement>(StringComparer.Ordinal);
        XElement[] children = dict.Elements().ToArray();
        Assert.True(children.Length % 2 == 0, $"odd number of elements in a dict: {dict}");
        for (int i = 0; i < children.Length; i += 2)
        {
            Assert.Equal("key", children[i].Name.LocalName);
            Assert.NotEqual("key", children[i + 1].Name.LocalName);
            Assert.True(pairs.TryAdd(children[i].Value, children[i + 1]), $"key {children[i].Value} twice");
        }
        return pairs;
    }

    [Fact]
    public void ThePlistIsADictOfKeysLaunchdKnowsWithTheTypesItExpects()
    {
        foreach ((string key, XElement value) in TopLevel())
        {
            Assert.True(s_knownKeys.TryGetValue(key, out string[]? types), $"{key} is not a launchd.plist(5) key this test knows");
            Assert.Contains(value.Name.LocalName, types);
        }
    }

    [Fact]
    public void TheLabelIsTheFileNameAndTheJobRestartsOnlyAfterAFailure()
    {
        Dictionary<string, XElement> top = TopLevel();
        Assert.Equal(Path.GetFileNameWithoutExtension(s_path), top["Label"].Value);
        Assert.Equal("true", top["RunAtLoad"].Name.LocalName);
        Dictionary<string, XElement> keepAlive = Pairs(top["KeepAlive"]);
        Assert.Equal("false", Assert.Single(keepAlive, p => p.Key == "SuccessfulExit").Value.Name.LocalName);
        Assert.Contains(top["ProcessType"].Value, new[] { "Background", "Standard", "Adaptive", "Interactive" });
        Assert.True(int.Parse(top["ThrottleInterval"].Value, CultureInfo.InvariantCulture) > 0);
    }

    [Fact]
    public void LaunchdWaitsLongerThanTheDefaultDrainBeforeItKills()
    {
        int exitTimeOut = int.Parse(TopLevel()["ExitTimeOut"].Value, CultureInfo.InvariantCulture);
        Assert.True(exitTimeOut > new ProxyOptions().DrainTimeoutSeconds,
            $"ExitTimeOut {exitTimeOut} s: launchd would SIGKILL during the drain (--drain-timeout {new ProxyOptions().DrainTimeoutSeconds} s)");
    }

    [Fact]
    public void TheProgramArgumentsAreAnAbsoluteBinaryAndACommandLineOurParserAccepts()
    {
        string[] argv = TopLevel()["ProgramArguments"].Elements().Select(e =>
        {
            Assert.Equal("string", e.Name.LocalName);
            return e.Value;
        }).ToArray();

        Assert.Equal("/usr/local/bin/cookieproxy", argv[0]);
        ParseResult parsed = CommandTree.Parse(CommandTree.Build(new CommandHandlers()), argv[1..]);
        Assert.Empty(parsed.Errors);
        Assert.Equal("run", parsed.CommandResult.Command.Name);
        // The paths are the ones the README's macOS deployment installs to.
        string readme = File.ReadAllText(Path.Combine(ConfigFileTests.RepoRoot(), "README.md"));
        Assert.Contains(argv[0], readme);
        Assert.Contains(Path.GetDirectoryName(argv[Array.IndexOf(argv, "--config") + 1])!, readme);
    }
}
