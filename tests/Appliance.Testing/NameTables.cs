using System.Text.RegularExpressions;

namespace Appliance.Testing;

/// <summary>
/// Checks a metric-label table against its enum: a name for every member, as many names as members,
/// each unique and in Prometheus' snake_case. A member added without a name (or a name without a
/// member) would otherwise show up only as an IndexOutOfRangeException, or a wrong label, at scrape time.
/// </summary>
public static partial class NameTables
{
    /// <summary>What is wrong with the table; empty when nothing is. <paramref name="notLabels"/>: members that are never counted, so have no name.</summary>
    public static IReadOnlyList<string> Problems<TEnum>(int tableLength, Func<TEnum, string> name, params TEnum[] notLabels)
        where TEnum : struct, Enum
    {
        var problems = new List<string>();
        TEnum[] members = Enum.GetValues<TEnum>().Except(notLabels).ToArray();
        if (tableLength != members.Length)
        {
            problems.Add($"{typeof(TEnum).Name}: {members.Length} members but {tableLength} names");
        }
        var seen = new Dictionary<string, TEnum>();
        foreach (TEnum member in members)
        {
            string label;
            try
            {
                label = name(member);
            }
            catch (IndexOutOfRangeException)
            {
                problems.Add($"{typeof(TEnum).Name}.{member}: no name");
                continue;
            }
            if (!SnakeCase().IsMatch(label))
            {
                problems.Add($"{typeof(TEnum).Name}.{member}: '{label}' is not snake_case");
            }
            if (!seen.TryAdd(label, member))
            {
                problems.Add($"{typeof(TEnum).Name}.{member}: '{label}' is also the name of {seen[label]}");
            }
        }
        return problems;
    }

    [GeneratedRegex("^[a-z][a-z0-9_]*$")]
    private static partial Regex SnakeCase();
}
