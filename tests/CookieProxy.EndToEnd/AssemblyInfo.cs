// One lab, one proxy at a time: the tests share namespaces, addresses and the protected port.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
