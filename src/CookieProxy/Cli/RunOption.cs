using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace CookieProxy.Host.Cli;

/// <summary>Reads an option's value from text (a command-line argument or a config-file scalar). On failure
/// <paramref name="error"/> says why, without the option's name or the text: the caller prefixes
/// <c>--name 'text': </c> or <c>FILE:LINE: key: 'text': </c>.</summary>
public delegate bool ValueParser<T>(string text, out T value, out string error);

/// <summary>
/// One `run` option, declared once in <see cref="RunOptions"/>: its command-line name (<c>--max-flows</c>), its
/// config key (the same without the dashes), its help, how its value is read and checked, which
/// <see cref="ProxyOptions"/> property it sets, and whether a reload may change it.
/// </summary>
public abstract class RunOption
{
    protected RunOption(string name, string help, bool reloadable)
    {
        Name = name;
        Help = help;
        Reloadable = reloadable;
    }

    /// <summary>The command-line spelling, with the two dashes.</summary>
    public string Name { get; }

    /// <summary>The config-file key: the name without the dashes.</summary>
    public string Key => Name[2..];

    public string Help { get; }

    /// <summary>A reload may change it in place; otherwise a reload that changes it is refused.</summary>
    public bool Reloadable { get; }

    /// <summary>The value is a list: comma-separated on the command line, a YAML list (or one value) in the file.</summary>
    public bool IsList { get; init; }

    /// <summary>The System.CommandLine option (syntax, --help, `--opt=value` and `--opt value`).</summary>
    public abstract Option Symbol { get; }

    /// <summary>Sets the option from text. Returns null, or why the text is not a valid value.</summary>
    public abstract string? TryApply(ref ProxyOptions options, string text);

    /// <summary>Sets the option if the command line gave it. Returns null, or the error naming the option.</summary>
    internal abstract string? TryApplyGiven(ParseResult parsed, ref ProxyOptions options);

    /// <summary>Whether <paramref name="a"/> and <paramref name="b"/> differ in this option.</summary>
    public abstract bool Differs(ProxyOptions a, ProxyOptions b);

    /// <summary>The option's value in <paramref name="options"/>, as config-file text.</summary>
    public abstract string Format(ProxyOptions options);
}

/// <summary>A <see cref="RunOption"/> whose value has type <typeparamref name="T"/>.</summary>
public sealed class RunOption<T> : RunOption
{
    private readonly ValueParser<T> _parse;
    private readonly Func<ProxyOptions, T> _get;
    private readonly Func<ProxyOptions, T, ProxyOptions> _set;
    private readonly Option _symbol;
    private readonly bool _isFlag;

    public RunOption(string name, string? valueName, string help, ValueParser<T> parse, Func<ProxyOptions, T> get,
        Func<ProxyOptions, T, ProxyOptions> set, bool reloadable)
        : base(name, help, reloadable)
    {
        _parse = parse;
        _get = get;
        _set = set;
        _isFlag = typeof(T) == typeof(bool);
        // Flags are Option<bool> (`--hide-port`, `--hide-port=false`); everything else is read as text and checked
        // by our parser, so the command line and the config file give the same messages.
        _symbol = _isFlag
            ? new Option<bool>(name) { Description = help, Arity = ArgumentArity.ZeroOrOne }
            : new Option<string>(name) { Description = help, HelpName = valueName, Arity = ArgumentArity.ExactlyOne };
    }

    public override Option Symbol => _symbol;

    public T Get(ProxyOptions options) => _get(options);

    public override string? TryApply(ref ProxyOptions options, string text)
    {
        if (!_parse(text, out T value, out string error))
        {
            return error;
        }
        options = _set(options, value);
        return null;
    }

    internal override string? TryApplyGiven(ParseResult parsed, ref ProxyOptions options)
    {
        OptionResult? given = parsed.GetResult(_symbol);
        if (given is null || given.Implicit)
        {
            return null;
        }
        string text = _isFlag
            ? (given.Tokens.Count == 0 ? "true" : given.Tokens[^1].Value)
            : given.Tokens[^1].Value;
        string? error = TryApply(ref options, text);
        return error is null ? null : $"{Name} '{text}': {error}";
    }

    public override bool Differs(ProxyOptions a, ProxyOptions b) => !EqualityComparer<T>.Default.Equals(_get(a), _get(b));

    public override string Format(ProxyOptions options) => _get(options) switch
    {
        null => "",
        Limits.SourcePrefixSet set => set.Count == 0 ? "[]" : "[" + set + "]",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        object o => o.ToString() ?? "",
    };
}
