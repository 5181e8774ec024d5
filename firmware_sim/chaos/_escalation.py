async def store_killed(folder):
    raise NotImplementedError
